/* demo.c: prints the library's greeting every half second. */
#include <stdio.h>
#include <unistd.h>

const char *greeting(void);
int greet_calls(void);

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (;;) {
    const char *g = greeting();
    printf("[pid %d] %s (call %d)\n", getpid(), g, greet_calls());
    usleep(500000);
  }
}
