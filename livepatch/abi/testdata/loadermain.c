/* loadermain.c: runs libloader.so's loader_run. */
int loader_run(void);

int main(void) { return loader_run(); }
