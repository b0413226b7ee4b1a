/* simple.c: prints the text of early.c's constructor (when linked with it)
   and whether the runtime's block is present and ready; built dynamic and
   static. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

extern char *early_text __attribute__((weak));
/* The first words of struct ulp_abi: magic, version, size, state. */
extern unsigned int ulp_abi[] __attribute__((weak));

int main(void) {
  printf("simple: %s\n", &early_text && early_text ? early_text : "no early");
  printf("runtime: %s\n", !ulp_abi                                           ? "absent"
                         : ulp_abi[0] == 0x31504c55u && ulp_abi[3] == 0u ? "ready"
                                                                         : "not ready");
  printf("pid %d\n", getpid());
  return 0;
}
