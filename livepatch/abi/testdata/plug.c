/* plug.c: the plugin libloader.so finds through its RUNPATH. */
const char *plug_name(void) { return "found"; }
