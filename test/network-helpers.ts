/** Helpers for the network tests: lines from a sandbox, interfaces and namespaces of the host. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { deleteNetns, listNetns } from '../lib';

/** The next line a stream prints (rejects if it ends first). */
export function readLine(stream: NodeJS.ReadableStream | null): Promise<string> {
  if (!stream) return Promise.reject(new Error('no stream'));
  return new Promise((resolve, reject) => {
    let buffered = '';
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString();
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.pause();
      resolve(buffered.slice(0, nl));
    };
    const onEnd = (): void => reject(new Error(`stream ended before a full line: '${buffered}'`));
    stream.on('data', onData);
    stream.on('end', onEnd);
  });
}

/** The host's interfaces (this process's network namespace), sorted. */
export function hostInterfaces(): string[] {
  return fs.readdirSync('/sys/class/net').sort();
}

/** Interface names listed in a /proc/net/dev text. */
export function procNetDevNames(text: string): string[] {
  return text.split('\n').slice(2).filter(Boolean).map((l) => l.split(':')[0].trim()).sort();
}

/** What `ip netns list` shows: names only. */
export function ipNetnsList(): string[] {
  return execFileSync('ip', ['netns', 'list']).toString().split('\n').filter(Boolean).map((l) => l.split(' ')[0]).sort();
}

/** A netns name unique to this test process. */
export function testNetnsName(tag: string): string {
  return `nsjt-${process.pid}-${tag}`;
}

/** Deletes the named namespaces that still exist (for finally blocks). */
export function removeNetns(...names: string[]): void {
  const existing = listNetns();
  for (const name of names) if (existing.includes(name)) deleteNetns(name);
}

/** Deletes host links a test made, if they are still there (for finally blocks). */
export function removeLinks(...names: string[]): void {
  for (const name of names) {
    if (fs.existsSync(`/sys/class/net/${name}`)) execFileSync('ip', ['link', 'delete', 'dev', name]);
  }
}

/** Connects to 127.0.0.1:port from this thread's namespace: what it reads, or the error code. */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('ETIMEDOUT')));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/**
 * A node program for `process.execPath -e`: a TCP server on `host:port` that answers each
 * connection with `reply` and prints `ready` once it listens.
 */
export function tcpServerScript(host: string, port: number, reply: string): string {
  return `require('net').createServer((c) => c.end(${JSON.stringify(reply)})).listen(${port}, ${JSON.stringify(host)}, () => console.log('ready'));`;
}
