// Output nobody reads (stdio 'ignore'): the program writes into a pipe that one thread of
// this process drains and drops, so its fds 1 and 2 are no handle on a host inode (as
// /dev/null would be: a program could fchmod it) and writes neither fail nor block for long.
#pragma once

namespace nsjail {

// Takes the read end of a pipe (O_NONBLOCK, CLOEXEC) in every case: its data is dropped, and
// it is closed once every writer has closed theirs. 0, or the errno of starting the draining
// thread or watching the fd (the fd is then closed).
int DiscardOutput(int read_fd);

}  // namespace nsjail
