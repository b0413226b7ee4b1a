/* mapfile: maps the file argv[1] readable at offset 0 (as the dynamic
 * loader maps a library), prints "ready" and waits until stdin closes: a
 * user's process that shows the agent any file under any name. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 2)
		return 2;
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	char b[64];
	while (read(0, b, sizeof b) > 0) {
	}
	return 0;
}
