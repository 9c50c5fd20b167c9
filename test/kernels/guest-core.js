'use strict';
// For a guest run whose test program died of a signal (test/kernels/stage2.sh): reads the
// core file it left and prints the registers and the code bytes around pc and lr, so that
// a crash in code without a file (V8's JIT) can be disassembled on the host
// (aarch64-linux-gnu-objdump -D -b binary -m aarch64 on the hex, xxd -r -p).
//   node test/kernels/guest-core.js <core file>
const fs = require('node:fs');

const fd = fs.openSync(process.argv[2], 'r');
const read = (offset, length) => {
  const b = Buffer.alloc(length);
  fs.readSync(fd, b, 0, length, offset);
  return b;
};
const eh = read(0, 64);
if (eh.toString('latin1', 0, 4) !== '\x7fELF') throw new Error('not an ELF core');
const machine = eh.readUInt16LE(18);
const phoff = Number(eh.readBigUInt64LE(32));
const phentsize = eh.readUInt16LE(54);
const phnum = eh.readUInt16LE(56);
const loads = [];
const files = [];
let regs;
for (let i = 0; i < phnum; i++) {
  const ph = read(phoff + i * phentsize, phentsize);
  const type = ph.readUInt32LE(0);
  const offset = Number(ph.readBigUInt64LE(8));
  const vaddr = ph.readBigUInt64LE(16);
  const filesz = Number(ph.readBigUInt64LE(32));
  const memsz = ph.readBigUInt64LE(40);
  const flags = ph.readUInt32LE(4);
  if (type === 1) loads.push({ offset, vaddr, filesz, memsz, flags });
  if (type === 4 && regs === undefined) {
    const notes = read(offset, filesz);
    for (let at = 0; at + 12 <= notes.length;) {
      const namesz = notes.readUInt32LE(at);
      const descsz = notes.readUInt32LE(at + 4);
      const ntype = notes.readUInt32LE(at + 8);
      const desc = at + 12 + Math.ceil(namesz / 4) * 4;
      if (ntype === 0x46494c45) {
        // NT_FILE: count, page size, then {start, end, offset} per file mapping, then the names.
        const count = Number(notes.readBigUInt64LE(desc));
        let name = desc + 16 + count * 24;
        for (let f = 0; f < count; f++) {
          const end = notes.indexOf(0, name);
          files.push({ start: notes.readBigUInt64LE(desc + 16 + f * 24), end: notes.readBigUInt64LE(desc + 24 + f * 24), name: notes.toString('utf8', name, end) });
          name = end + 1;
        }
      }
      if (ntype === 1 && regs === undefined) {
        // struct elf_prstatus: pr_reg at 112 on both 64-bit architectures.
        const n = machine === 183 ? 34 : 27;
        regs = [];
        for (let r = 0; r < n; r++) regs.push(notes.readBigUInt64LE(desc + 112 + r * 8));
        console.log(`signal ${notes.readUInt16LE(desc + 12)}`);
      }
      at = desc + Math.ceil(descsz / 4) * 4;
    }
  }
}
if (regs === undefined) throw new Error('no NT_PRSTATUS note');
const hex = (v) => '0x' + v.toString(16);
let pc;
let lr;
if (machine === 183) {
  pc = regs[32];
  lr = regs[30];
  console.log(regs.map((v, i) => (i < 31 ? `x${i}` : ['sp', 'pc', 'pstate'][i - 31]) + '=' + hex(v)).join(' '));
} else {
  pc = regs[16];
  console.log(`rip=${hex(pc)} rsp=${hex(regs[19])}`);
}
function dump(name, address, before, after) {
  const file = files.find((f) => address >= f.start && address < f.end);
  if (file) console.log(`${name} ${hex(address)}: ${file.name} + ${hex(address - file.start)} (mapping ${hex(file.start)})`);
  const seg = loads.find((l) => address >= l.vaddr && address < l.vaddr + l.memsz);
  if (!seg) {
    console.log(`${name} ${hex(address)}: in no dumped segment`);
    return;
  }
  const start = address - BigInt(before) < seg.vaddr ? seg.vaddr : address - BigInt(before);
  const rel = Number(start - seg.vaddr);
  const length = Math.min(before + after, seg.filesz - rel);
  console.log(`${name} ${hex(address)}: segment ${hex(seg.vaddr)}-${hex(seg.vaddr + seg.memsz)} flags ${seg.flags}; bytes from ${hex(start)}:`);
  console.log(read(seg.offset + rel, Math.max(0, length)).toString('hex'));
}
dump('pc', pc, 256, 64);
if (lr !== undefined) dump('lr', lr, 64, 64);
