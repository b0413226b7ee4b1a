/* holder TARGET.so LIVEPATCH.so: a patch target for the inspection tests
 * of `ulp patches`, `check` and `messages`. It dlopens the target library
 * and the livepatch, prints the addresses of foo and foo_lp, "ready", and
 * then, for each line read on stdin, prints foo(1): the test rewrites foo's
 * entry from outside while the process blocks in read(). */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: holder TARGET.so LIVEPATCH.so\n");
    return 2;
  }
  void *t = dlopen(argv[1], RTLD_NOW);
  void *lp = dlopen(argv[2], RTLD_NOW);
  if (!t || !lp) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*foo)(int) = (int (*)(int))dlsym(t, "foo");
  void *foo_lp = dlsym(lp, "foo_lp");
  printf("foo %p\nfoo_lp %p\nready\n", (void *)foo, foo_lp);
  fflush(stdout);
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    printf("%d\n", foo(1));
    fflush(stdout);
  }
  return 0;
}
