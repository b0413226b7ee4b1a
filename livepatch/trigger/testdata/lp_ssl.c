/* lp_ssl: a replacement for SSL_get_version (libssl.so.3), which nginx
 * calls for $ssl_protocol: clients see that the patch is live. */
const char *ssl_get_version_lp(const void *ssl) {
  (void)ssl;
  return "TLSv1.3+livepatched";
}
