/* loader.c: libloader.so, built with RUNPATH $ORIGIN/plugins. Its dlopen of
   a bare "libplug.so" and its dlsym(RTLD_NEXT) resolve relative to this
   library: the caller. A wrapper around dlopen or dlsym would make the
   runtime the caller and break both. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int loader_run(void) {
  void *h = dlopen("libplug.so", RTLD_NOW);
  if (!h) {
    printf("loader: dlopen: %s\n", dlerror());
    return 1;
  }
  const char *(*plug)(void) = (const char *(*)(void))dlsym(h, "plug_name");
  int (*next_puts)(const char *) = (int (*)(const char *))dlsym(RTLD_NEXT, "puts");
  if (!plug || !next_puts) {
    printf("loader: dlsym failed\n");
    return 1;
  }
  printf("loader: plugin %s\n", plug());
  next_puts("loader: RTLD_NEXT puts works");
  return 0;
}
