/* preloadprobe: prints whether the runtime is loaded in this process; with
   arguments it execs them (a program that execs another program), or with
   "-wait" it then waits for its standard input to close. */
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int seen(struct dl_phdr_info *info, size_t size, void *data) {
	(void)size;
	const char *slash = strrchr(info->dlpi_name, '/');
	if (strcmp(slash ? slash + 1 : info->dlpi_name, "libpulp.so.0") == 0)
		*(int *)data = 1;
	return 0;
}

int main(int argc, char **argv) {
	int found = 0;
	dl_iterate_phdr(seen, &found);
	void *p = malloc(100); /* through the runtime's allocator when present */
	printf("%s: uid %d euid %d runtime %s\n", argv[0], (int)getuid(), (int)geteuid(), found ? "present" : "absent");
	free(p);
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "-wait") == 0) {
		char buf[64];
		while (fread(buf, 1, sizeof buf, stdin) > 0)
			;
		return 0;
	}
	if (argc > 1) {
		execv(argv[1], argv + 1);
		perror("execv");
		return 1;
	}
	return 0;
}
