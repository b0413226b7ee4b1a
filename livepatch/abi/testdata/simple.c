/* simple.c: prints one line (with early.c linked in, that library's text),
   then its RTLD_NEXT lookup of puts; built dynamic and static. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

extern char *early_text __attribute__((weak));

int main(void) {
  printf("simple: %s\n", &early_text && early_text ? early_text : "no early");
  printf("pid %d\n", getpid());
  return 0;
}
