// Host-side set-up for the containment suite (never an attack): makes and removes the host
// objects the attacks aim at, which Node cannot make itself. Prints the result on one line.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KEYCTL_INVALIDATE 21
#define KEY_SPEC_USER_KEYRING -4

int main(int argc, char** argv) {
  if (argc == 4 && !strcmp(argv[1], "mq-create")) {
    // A queue holding one message (argv[3]).
    struct mq_attr attr = {.mq_maxmsg = 4, .mq_msgsize = 64};
    mqd_t q = mq_open(argv[2], O_CREAT | O_EXCL | O_WRONLY, 0644, &attr);
    if (q == (mqd_t)-1 || mq_send(q, argv[3], strlen(argv[3]) + 1, 0) < 0) return perror("mq"), 1;
    mq_close(q);
    printf("ok\n");
  } else if (argc == 3 && !strcmp(argv[1], "mq-unlink")) {
    if (mq_unlink(argv[2]) < 0 && errno != ENOENT) return perror("mq_unlink"), 1;
  } else if (argc == 4 && !strcmp(argv[1], "key-add")) {
    // A user key in this user's (root's) user keyring; prints its serial.
    long id = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]), KEY_SPEC_USER_KEYRING);
    if (id < 0) return perror("add_key"), 1;
    printf("%ld\n", id);
  } else if (argc == 3 && !strcmp(argv[1], "key-invalidate")) {
    if (syscall(SYS_keyctl, KEYCTL_INVALIDATE, atol(argv[2])) < 0 && errno != ENOKEY) return perror("keyctl"), 1;
  } else {
    fprintf(stderr, "usage: host-setup mq-create NAME TEXT | mq-unlink NAME | key-add DESC PAYLOAD | key-invalidate SERIAL\n");
    return 2;
  }
  return 0;
}
