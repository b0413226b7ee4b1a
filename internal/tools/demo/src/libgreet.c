/* libgreet.c: the library the demo program calls. Built with
   -fpatchable-function-entry=16,14, so each function has 14 bytes of
   padding before its entry and 2 after: room for a live patch's jump. */
#include <stdio.h>

static int calls;

const char *greeting(void) {
  calls++;
  return "Hello from the original libgreet";
}

int greet_calls(void) { return calls; }
