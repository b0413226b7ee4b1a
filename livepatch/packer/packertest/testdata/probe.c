/* probe SO FUNC ARG: dlopen SO, call int FUNC(int ARG), print the result. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: probe SO FUNC ARG\n");
    return 2;
  }
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  int (*f)(int) = (int (*)(int))dlsym(h, argv[2]);
  if (!f) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }
  printf("%d\n", f(atoi(argv[3])));
  return 0;
}
