/* libvictim: a shared library with a padded function and a fixed build-id. */
int libvictim_answer(void) { return 42; }
