/* probe: observes, through OpenSSL's public API, whether the fixes of the
 * test patches are live in the libcrypto.so.3 this process runs. It reads
 * one word a line on stdin and answers "WORD fixed" or "WORD vulnerable"
 * (or "WORD error WHY") on stdout:
 *
 *   pkcs7  CVE-2026-45447: PKCS7_verify() frees the caller's content BIO
 *          when the signed data lists no digest algorithm (the BIO's
 *          destroy callback runs inside PKCS7_verify).
 *   ocb    CVE-2026-45445: EVP_Cipher() with AES-128-OCB ignores the IV:
 *          its ciphertext differs from EVP_EncryptUpdate()'s.
 *   hex    CVE-2026-31789: OPENSSL_buf2hexstr_ex() sizes the hex string of
 *          SIZE_MAX/3+1 bytes as 2 (the length wraps) instead of refusing
 *          it with CRYPTO_R_TOO_MANY_BYTES. Only the size is asked for: no
 *          buffer is read or written.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cryptoerr.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

static EVP_PKEY *key;
static X509 *cert;

/* A self-signed P-256 certificate, made once. */
static int make_cert(void)
{
    X509_NAME *name;

    key = EVP_EC_gen("P-256");
    cert = X509_new();
    if (key == NULL || cert == NULL)
        return 0;
    X509_set_version(cert, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"probe", -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_set_pubkey(cert, key);
    return X509_sign(cert, key, EVP_sha256()) > 0;
}

/* The content BIO handed to PKCS7_verify: serves "hello" and counts its
 * destruction. */
static int destroyed;
static int served;

static int content_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int content_destroy(BIO *b)
{
    (void)b;
    destroyed++;
    return 1;
}

static int content_read(BIO *b, char *buf, int n)
{
    (void)b;
    if (served || n < 5)
        return 0;
    memcpy(buf, "hello", 5);
    served = 1;
    return 5;
}

static long content_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH;
}

static const char *probe_pkcs7(void)
{
    static BIO_METHOD *meth;
    BIO *data, *content;
    PKCS7 *p7;
    STACK_OF(X509) *certs;
    const char *verdict;

    if (meth == NULL) {
        meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "probe content");
        BIO_meth_set_create(meth, content_create);
        BIO_meth_set_destroy(meth, content_destroy);
        BIO_meth_set_read(meth, content_read);
        BIO_meth_set_ctrl(meth, content_ctrl);
    }
    data = BIO_new_mem_buf("hello", 5);
    p7 = PKCS7_sign(cert, key, NULL, data, PKCS7_DETACHED | PKCS7_BINARY);
    BIO_free(data);
    if (p7 == NULL)
        return "error PKCS7_sign";
    /* Signed data whose digestAlgorithms set is empty: PKCS7_dataInit then
     * returns the caller's BIO itself. */
    while (sk_X509_ALGOR_num(p7->d.sign->md_algs) > 0)
        X509_ALGOR_free(sk_X509_ALGOR_pop(p7->d.sign->md_algs));
    certs = sk_X509_new_null();
    sk_X509_push(certs, cert);
    content = BIO_new(meth);
    destroyed = served = 0;
    if (PKCS7_verify(p7, certs, NULL, content, NULL, PKCS7_NOVERIFY | PKCS7_BINARY) > 0) {
        verdict = "error PKCS7_verify accepted a signature without its digest";
    } else if (destroyed) {
        verdict = "vulnerable"; /* content is gone: not touched again */
    } else {
        verdict = "fixed";
        BIO_free(content);
    }
    ERR_clear_error();
    sk_X509_free(certs);
    PKCS7_free(p7);
    return verdict;
}

static const char *probe_ocb(void)
{
    static const unsigned char k[16] = "0123456789abcdef", iv[12] = "nonce-nonce!";
    unsigned char pt[32], stream[48], oneshot[48];
    int n = 0, m = 0;
    EVP_CIPHER *ocb = EVP_CIPHER_fetch(NULL, "AES-128-OCB", NULL);
    EVP_CIPHER_CTX *a = EVP_CIPHER_CTX_new(), *b = EVP_CIPHER_CTX_new();
    const char *verdict = "error EVP";

    memset(pt, 'p', sizeof(pt));
    if (ocb != NULL && a != NULL && b != NULL
        && EVP_EncryptInit_ex2(a, ocb, k, iv, NULL)
        && EVP_EncryptUpdate(a, stream, &n, pt, sizeof(pt))
        && EVP_EncryptFinal_ex(a, stream + n, &m)
        && EVP_CipherInit_ex2(b, ocb, k, iv, 1, NULL)) {
        int r = EVP_Cipher(b, oneshot, pt, sizeof(pt));

        if (r <= 0)
            verdict = "error EVP_Cipher";
        else
            verdict = memcmp(stream, oneshot, sizeof(pt)) == 0 ? "fixed" : "vulnerable";
    }
    ERR_clear_error();
    EVP_CIPHER_CTX_free(a);
    EVP_CIPHER_CTX_free(b);
    EVP_CIPHER_free(ocb);
    return verdict;
}

static const char *probe_hex(void)
{
    size_t len = 0;
    unsigned long e;
    int r;

    ERR_clear_error();
    r = OPENSSL_buf2hexstr_ex(NULL, 0, &len, (const unsigned char *)"", SIZE_MAX / 3 + 1, ':');
    e = ERR_get_error();
    ERR_clear_error();
    if (r == 1 && len == 2)
        return "vulnerable";
    if (r == 0 && ERR_GET_REASON(e) == CRYPTO_R_TOO_MANY_BYTES)
        return "fixed";
    return "error unexpected answer";
}

int main(void)
{
    char word[32];

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!make_cert()) {
        fprintf(stderr, "probe: cannot make a certificate\n");
        return 1;
    }
    printf("ready %s\n", OpenSSL_version(OPENSSL_VERSION));
    while (scanf("%31s", word) == 1) {
        const char *v = "error unknown probe";

        if (strcmp(word, "pkcs7") == 0)
            v = probe_pkcs7();
        else if (strcmp(word, "ocb") == 0)
            v = probe_ocb();
        else if (strcmp(word, "hex") == 0)
            v = probe_hex();
        printf("%s %s\n", word, v);
    }
    return 0;
}
