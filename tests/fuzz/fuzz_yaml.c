/*
 * fuzz_yaml.c: libFuzzer target for the configuration loader (handler/server/sig_yaml.c).
 *
 * Each input is a configuration text, given to sig_yaml_load_string(). The tree that comes back is walked and checked
 * (what libh2o's configurator relies on: valid types, strings present, reference counts that add up) and freed; a
 * refusal must leave a message in errbuf. The error buffer is a heap block of exactly its size, so AddressSanitizer
 * sees any write past it.
 *
 * No filesystem: a `!file PATH` scalar makes the loader open PATH, which a fuzzer must not do (it could read any file,
 * or block on a FIFO). So inputs that could produce the tag "!file" are skipped before loading:
 * - those that contain "!file" literally (`!file x`, `!<!file> x`);
 * - those that contain both '!' and '%', because a tag can also be spelled with URI escapes (`!fil%65`) or through a
 *   %TAG directive (`%TAG !e! !fil` then `!e!e`). A tag always starts with '!', and without '%' its text is what
 *   the input says, so anything else is safe.
 * The include code itself is covered by the unit tests (tests/unit/test_yaml.c), with files they create.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <string.h>
#include "server/sig_yaml.h"
#include "fuzz_check.h"

#define ERRBUF_SIZE 128
/* aliases share nodes, so a walk of the tree as a tree can take exponential time: stop counting after this */
#define MAX_VISITS 100000

/* Returns 1 if loading `data` could include a file. */
static int may_include(const uint8_t *data, size_t size)
{
    return memmem(data, size, "!file", 5) != NULL || (memchr(data, '!', size) != NULL && memchr(data, '%', size) != NULL);
}

/* Checks a node and its children; `*visits` bounds the work. */
static void check_node(const yoml_t *node, size_t *visits)
{
    size_t i;

    if (++*visits > MAX_VISITS)
        return;
    FUZZ_CHECK(node != NULL, "NULL node in the tree");
    FUZZ_CHECK(node->_refcnt >= 1, "node without a reference");
    FUZZ_CHECK(node->filename != NULL && strcmp(node->filename, "fuzz.yaml") == 0, "node without its file name");
    FUZZ_CHECK(node->tag == NULL || strcmp(node->tag, "!file") != 0, "!file tag left in the tree");
    switch (node->type) {
    case YOML_TYPE_SCALAR:
        FUZZ_CHECK(node->data.scalar != NULL, "scalar without a string");
        break;
    case YOML_TYPE_SEQUENCE:
        for (i = 0; i != node->data.sequence.size; ++i)
            check_node(node->data.sequence.elements[i], visits);
        break;
    case YOML_TYPE_MAPPING:
        for (i = 0; i != node->data.mapping.size; ++i) {
            check_node(node->data.mapping.elements[i].key, visits);
            check_node(node->data.mapping.elements[i].value, visits);
        }
        break;
    default:
        FUZZ_CHECK(0, "node of an unknown type (an unresolved alias?)");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *errbuf;
    yoml_t *root;
    size_t visits = 0;

    if (may_include(data, size))
        return 0;
    if ((errbuf = malloc(ERRBUF_SIZE)) == NULL)
        abort();
    errbuf[0] = '\0';
    root = sig_yaml_load_string((const char *)data, size, "fuzz.yaml", errbuf, ERRBUF_SIZE);
    if (root != NULL) {
        FUZZ_CHECK(root->_refcnt == 1, "root does not hold exactly one reference");
        check_node(root, &visits);
        yoml_free(root, NULL);
    } else {
        FUZZ_CHECK(errbuf[0] != '\0' && memchr(errbuf, '\0', ERRBUF_SIZE) != NULL, "refused without a message");
        FUZZ_CHECK(strncmp(errbuf, "fuzz.yaml", 9) == 0, "message does not start with the file name");
    }
    free(errbuf);
    return 0;
}
