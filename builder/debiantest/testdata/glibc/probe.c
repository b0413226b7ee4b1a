/* probe: observes, through glibc's public API, whether the fix of
 * CVE-2025-15281 is live in the libc.so.6 this process runs. Each line on
 * stdin ("wordexp") is answered with "wordexp fixed" or "wordexp
 * vulnerable" on stdout: after wordexp("one") a second call with
 * WRDE_REUSE | WRDE_APPEND for "two" must give one word; the unfixed
 * wordexp keeps the freed word's count and gives two, the first of them a
 * freed pointer. The words are never read or freed: the unfixed result is
 * leaked rather than touched.
 */
#include <stdio.h>
#include <string.h>
#include <wordexp.h>
#include <gnu/libc-version.h>

static const char *probe(void)
{
    wordexp_t p;

    memset(&p, 0, sizeof(p));
    if (wordexp("one", &p, 0) != 0 || p.we_wordc != 1)
        return "error wordexp one";
    if (wordexp("two", &p, WRDE_REUSE | WRDE_APPEND) != 0)
        return "error wordexp two";
    if (p.we_wordc == 1) {
        wordfree(&p);
        return "fixed";
    }
    return p.we_wordc == 2 ? "vulnerable" : "error word count";
}

int main(void)
{
    char word[32];

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready %s\n", gnu_get_libc_version());
    while (scanf("%31s", word) == 1)
        printf("%s %s\n", word, strcmp(word, "wordexp") == 0 ? probe() : "error unknown probe");
    return 0;
}
