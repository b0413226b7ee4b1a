/* greet_livepatch.c: the replacement. It keeps the original's behaviour of
   counting calls: #calls in greet.dsc makes the packer record a reference,
   and at apply time calls_ref receives the address of libgreet's static
   `calls`. */
int *calls_ref;

const char *greeting_lp(void) {
  ++*calls_ref;
  return "Hello from the LIVE PATCH (applied while the program ran)";
}
