/*
 * yoml.h: the YAML node tree that libh2o's configurator walks.
 *
 * <h2o/configurator.h> does `#include "yoml.h"`, but Debian's libh2o-dev does not ship that header. This one
 * declares the same types with the same memory layout as the yoml_t compiled into libh2o.so (LP64), so that
 * trees built by sig_yaml.c can be handed to h2o_configurator_apply(). The include guard is the upstream one on
 * purpose: whichever copy is seen first wins and nothing is defined twice.
 *
 * Ownership: every node, string and array is allocated with malloc(), because libh2o frees nodes with its own
 * inlined copy of yoml_free() and re-creates nodes with malloc/realloc. A node shared by several parents (an
 * anchor referenced by aliases) counts one reference per parent in `_refcnt`.
 */
#ifndef yoml_h
#define yoml_h

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* the values are part of the ABI: libh2o switches on them */
typedef enum enum_yoml_type_t {
    YOML_TYPE_SCALAR = 0,
    YOML_TYPE_SEQUENCE = 1,
    YOML_TYPE_MAPPING = 2,
    YOML__TYPE_UNRESOLVED_ALIAS = 3
} yoml_type_t;

typedef struct st_yoml_t yoml_t;

/* a trailing flexible array inside a union is a GNU extension that every compiler we use accepts */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"

typedef struct st_yoml_sequence_t {
    size_t size;
    yoml_t *elements[];
} yoml_sequence_t;

typedef struct st_yoml_mapping_element_t {
    yoml_t *key;
    yoml_t *value;
} yoml_mapping_element_t;

typedef struct st_yoml_mapping_t {
    size_t size;
    yoml_mapping_element_t elements[];
} yoml_mapping_t;

/**
 * One YAML node. Sequence and mapping nodes are variable length: allocate
 * `offsetof(yoml_t, data.sequence.elements) + n * sizeof(yoml_t *)` (or the mapping equivalent).
 */
struct st_yoml_t {
    yoml_type_t type;
    char *filename; /* file the node came from (owned by the node), or NULL */
    size_t line;    /* 0-based; libh2o prints line + 1 */
    size_t column;  /* 0-based */
    char *anchor;   /* name of the `&anchor` on this node, or NULL */
    char *tag;      /* tag as resolved by the parser (e.g. "!foo"), or NULL */
    size_t _refcnt;
    union {
        char *scalar;
        yoml_sequence_t sequence;
        yoml_mapping_t mapping;
        char *alias; /* only for YOML__TYPE_UNRESOLVED_ALIAS */
    } data;
};

#pragma GCC diagnostic pop

/* the layout libh2o.so was compiled with; a mismatch must break the build, not the server */
#if defined(__LP64__)
_Static_assert(offsetof(yoml_t, type) == 0, "yoml_t.type");
_Static_assert(sizeof(yoml_type_t) == 4, "yoml_type_t is an int-sized enum");
_Static_assert(offsetof(yoml_t, filename) == 8, "yoml_t.filename");
_Static_assert(offsetof(yoml_t, line) == 16, "yoml_t.line");
_Static_assert(offsetof(yoml_t, column) == 24, "yoml_t.column");
_Static_assert(offsetof(yoml_t, anchor) == 32, "yoml_t.anchor");
_Static_assert(offsetof(yoml_t, tag) == 40, "yoml_t.tag");
_Static_assert(offsetof(yoml_t, _refcnt) == 48, "yoml_t._refcnt");
_Static_assert(offsetof(yoml_t, data) == 56, "yoml_t.data");
_Static_assert(offsetof(yoml_t, data.scalar) == 56, "yoml_t.data.scalar");
_Static_assert(offsetof(yoml_t, data.alias) == 56, "yoml_t.data.alias");
_Static_assert(offsetof(yoml_t, data.sequence.size) == 56, "yoml_t.data.sequence.size");
_Static_assert(offsetof(yoml_t, data.sequence.elements) == 64, "yoml_t.data.sequence.elements");
_Static_assert(offsetof(yoml_t, data.mapping.size) == 56, "yoml_t.data.mapping.size");
_Static_assert(offsetof(yoml_t, data.mapping.elements) == 64, "yoml_t.data.mapping.elements");
_Static_assert(offsetof(yoml_mapping_element_t, key) == 0, "yoml_mapping_element_t.key");
_Static_assert(offsetof(yoml_mapping_element_t, value) == 8, "yoml_mapping_element_t.value");
_Static_assert(sizeof(yoml_mapping_element_t) == 16, "yoml_mapping_element_t size (libh2o qsorts these)");
#else
#error "yoml.h: only the LP64 layout of libh2o's yoml_t has been verified"
#endif

/**
 * Drops one reference to `node` (NULL is fine); at zero frees the node, its strings and, recursively, its children.
 * If `mem_set` is not NULL it is used to wipe scalars before freeing them (e.g. for secrets).
 */
static inline void yoml_free(yoml_t *node, void *(*mem_set)(void *, int, size_t))
{
    size_t i;

    if (node == NULL || --node->_refcnt != 0)
        return;
    switch (node->type) {
    case YOML_TYPE_SCALAR:
        if (mem_set != NULL)
            mem_set(node->data.scalar, 0, strlen(node->data.scalar));
        free(node->data.scalar);
        break;
    case YOML_TYPE_SEQUENCE:
        for (i = 0; i != node->data.sequence.size; ++i)
            yoml_free(node->data.sequence.elements[i], mem_set);
        break;
    case YOML_TYPE_MAPPING:
        for (i = 0; i != node->data.mapping.size; ++i) {
            yoml_free(node->data.mapping.elements[i].key, mem_set);
            yoml_free(node->data.mapping.elements[i].value, mem_set);
        }
        break;
    case YOML__TYPE_UNRESOLVED_ALIAS:
        free(node->data.alias);
        break;
    }
    free(node->filename);
    free(node->anchor);
    free(node->tag);
    free(node);
}

/**
 * Returns the value of the first entry of `mapping` whose key is the scalar `key`, or NULL (also when `mapping` is not
 * a mapping). Later duplicates of the key are not looked at.
 */
static inline yoml_t *yoml_get(yoml_t *mapping, const char *key)
{
    size_t i;

    if (mapping->type != YOML_TYPE_MAPPING)
        return NULL;
    for (i = 0; i != mapping->data.mapping.size; ++i) {
        yoml_t *k = mapping->data.mapping.elements[i].key;
        if (k->type == YOML_TYPE_SCALAR && strcmp(k->data.scalar, key) == 0)
            return mapping->data.mapping.elements[i].value;
    }
    return NULL;
}

/**
 * Returns the first node (depth first, keys before values) at or below `node` carrying the anchor `name`, or NULL.
 */
static inline yoml_t *yoml_find_anchor(yoml_t *node, const char *name)
{
    yoml_t *found = NULL;
    size_t i;

    if (node->anchor != NULL && strcmp(node->anchor, name) == 0)
        return node;
    switch (node->type) {
    case YOML_TYPE_SEQUENCE:
        for (i = 0; found == NULL && i != node->data.sequence.size; ++i)
            found = yoml_find_anchor(node->data.sequence.elements[i], name);
        break;
    case YOML_TYPE_MAPPING:
        for (i = 0; found == NULL && i != node->data.mapping.size; ++i)
            if ((found = yoml_find_anchor(node->data.mapping.elements[i].key, name)) == NULL)
                found = yoml_find_anchor(node->data.mapping.elements[i].value, name);
        break;
    default:
        break;
    }
    return found;
}

#endif
