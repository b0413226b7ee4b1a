/* The program of ulp build's tests: answers one query a line on stdin. */
#include <stdio.h>
#include <string.h>

struct node {
  int a;
  int b;
};

int lib_parse(const char *s);
int lib_short(int n);
int lib_value(int i);
int lib_counter(void);
int lib_calls(void);
int lib_mix(int x);
int lib_node_b(const struct node *n);
int lib_ab(int w);
int lib_other_len(int n);

int main(void) {
  char line[256];
  struct node nd = {1, 2};
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  while (fgets(line, sizeof line, stdin)) {
    char arg[200] = "";
    int n = 0;
    if (sscanf(line, "parse %199s", arg) == 1)
      printf("%d\n", lib_parse(arg));
    else if (sscanf(line, "short %d", &n) == 1)
      printf("%d\n", lib_short(n));
    else if (sscanf(line, "value %d", &n) == 1)
      printf("%d\n", lib_value(n));
    else if (sscanf(line, "olen %d", &n) == 1)
      printf("%d\n", lib_other_len(n));
    else if (sscanf(line, "ab %d", &n) == 1)
      printf("%d\n", lib_ab(n));
    else if (sscanf(line, "mix %d", &n) == 1)
      printf("%d\n", lib_mix(n));
    else if (strncmp(line, "counter", 7) == 0)
      printf("%d\n", lib_counter());
    else if (strncmp(line, "calls", 5) == 0)
      printf("%d\n", lib_calls());
    else if (strncmp(line, "node", 4) == 0)
      printf("%d\n", lib_node_b(&nd));
    else
      printf("?\n");
  }
  return 0;
}
