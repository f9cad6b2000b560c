/*
 * sig_yaml.c: libyaml event stream -> yoml_t tree (see sig_yaml.h for the rules).
 *
 * One recursive-descent pass over yaml_parser_parse() events. Aliases are resolved while parsing (an anchor is
 * registered once its node is complete, so a node can never contain itself), and `!file` scalars are replaced by
 * loading the named file with a fresh parser on the spot.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>
#include "server/sig_yaml.h"

/* libyaml 0.2.5 has no nesting limit of its own and load_node() recurses; this bounds the stack even across 16 includes
   and is far beyond any real configuration */
#define MAX_NESTING 128
#define NO_LINE SIZE_MAX
#define FILE_TAG "!file"

/* state shared by the top-level document and every file it includes */
struct st_sig_yaml_session_t {
    char *errbuf;
    size_t errbuf_size;
    size_t depth; /* number of documents being parsed: 1 while in the top-level one */
    size_t num_files;
    struct {
        dev_t dev;
        ino_t ino;
    } files[SIG_YAML_MAX_INCLUDE_DEPTH + 1]; /* the chain of files being loaded, to report include cycles */
};

struct st_sig_yaml_anchor_t {
    char *name;
    yoml_t *node; /* borrowed: the node is owned by the tree being built */
};

/* one document being parsed */
struct st_sig_yaml_doc_t {
    struct st_sig_yaml_session_t *session;
    const char *filename;
    const char *text; /* the whole input: libyaml reports encoding errors as an offset into it */
    size_t len;
    yaml_parser_t parser;
    struct st_sig_yaml_anchor_t *anchors;
    size_t num_anchors;
};

static yoml_t *load_node(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev, size_t nesting);
static yoml_t *load_file(struct st_sig_yaml_session_t *session, const char *path, struct st_sig_yaml_doc_t *includer,
                         size_t include_line);

/* Writes "FILE:LINE: message" (or "FILE: message" for NO_LINE) to the session's errbuf; `line` is 0-based. */
__attribute__((format(printf, 4, 5))) static void set_error(struct st_sig_yaml_session_t *session, const char *filename,
                                                            size_t line, const char *fmt, ...)
{
    va_list args;
    int n;

    if (session->errbuf_size == 0)
        return;
    if (line == NO_LINE)
        n = snprintf(session->errbuf, session->errbuf_size, "%s: ", filename);
    else
        n = snprintf(session->errbuf, session->errbuf_size, "%s:%zu: ", filename, line + 1);
    if (n < 0)
        n = 0;
    if ((size_t)n >= session->errbuf_size)
        return; /* already truncated */
    va_start(args, fmt);
    vsnprintf(session->errbuf + n, session->errbuf_size - (size_t)n, fmt, args);
    va_end(args);
}

/* Returns the 0-based line of the byte at `offset`. */
static size_t count_lines(const char *text, size_t offset)
{
    size_t line = 0, i;

    for (i = 0; i != offset; ++i)
        if (text[i] == '\n')
            ++line;
    return line;
}

static int next_event(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev)
{
    yaml_parser_t *p = &doc->parser;

    if (yaml_parser_parse(p, ev))
        return 0;
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        set_error(doc->session, doc->filename, NO_LINE, "out of memory");
        break;
    case YAML_READER_ERROR: /* bad encoding: libyaml gives no line, only the offset of the bad byte */
        set_error(doc->session, doc->filename, count_lines(doc->text, p->problem_offset < doc->len ? p->problem_offset : doc->len),
                  "YAML read error: %s", p->problem);
        break;
    default:
        set_error(doc->session, doc->filename, p->problem_mark.line, "YAML syntax error: %s",
                  p->problem != NULL ? p->problem : "unknown error");
        break;
    }
    return -1;
}

/* Allocates a node of `size` bytes holding one reference, with its own copies of filename, anchor and tag. */
static yoml_t *new_node(struct st_sig_yaml_doc_t *doc, yoml_type_t type, size_t size, const yaml_mark_t *mark,
                        const yaml_char_t *anchor, const yaml_char_t *tag)
{
    yoml_t *node = calloc(1, size);

    if (node == NULL)
        goto Error;
    node->type = type;
    node->_refcnt = 1;
    node->line = mark->line;
    node->column = mark->column;
    if ((node->filename = strdup(doc->filename)) == NULL)
        goto Error;
    if (anchor != NULL && (node->anchor = strdup((const char *)anchor)) == NULL)
        goto Error;
    if (tag != NULL && (node->tag = strdup((const char *)tag)) == NULL)
        goto Error;
    return node;

Error:
    if (node != NULL) {
        free(node->filename);
        free(node->anchor);
        free(node);
    }
    set_error(doc->session, doc->filename, mark->line, "out of memory");
    return NULL;
}

static int add_anchor(struct st_sig_yaml_doc_t *doc, const yaml_char_t *name, yoml_t *node, const yaml_mark_t *mark)
{
    struct st_sig_yaml_anchor_t *anchors;

    if (name == NULL)
        return 0;
    if ((anchors = realloc(doc->anchors, (doc->num_anchors + 1) * sizeof(*anchors))) == NULL)
        goto Error;
    doc->anchors = anchors;
    if ((anchors[doc->num_anchors].name = strdup((const char *)name)) == NULL)
        goto Error;
    anchors[doc->num_anchors++].node = node;
    return 0;

Error:
    set_error(doc->session, doc->filename, mark->line, "out of memory");
    return -1;
}

static yoml_t *resolve_alias(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    size_t i;

    /* the latest definition wins: YAML allows an anchor name to be reused */
    for (i = doc->num_anchors; i != 0; --i) {
        if (strcmp(doc->anchors[i - 1].name, name) == 0) {
            ++doc->anchors[i - 1].node->_refcnt;
            return doc->anchors[i - 1].node;
        }
    }
    set_error(doc->session, doc->filename, ev->start_mark.line, "unknown alias *%s", name);
    return NULL;
}

/* Replaces a `!file PATH` scalar by the document in PATH, relative to the directory of the including file. */
static yoml_t *load_include(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev)
{
    const char *path = (const char *)ev->data.scalar.value, *slash = strrchr(doc->filename, '/');
    size_t dirlen = path[0] != '/' && slash != NULL ? (size_t)(slash - doc->filename + 1) : 0;
    char *resolved;
    yoml_t *node;

    if (path[0] == '\0') {
        set_error(doc->session, doc->filename, ev->start_mark.line, FILE_TAG " needs a file name");
        return NULL;
    }
    if ((resolved = malloc(dirlen + strlen(path) + 1)) == NULL) {
        set_error(doc->session, doc->filename, ev->start_mark.line, "out of memory");
        return NULL;
    }
    memcpy(resolved, doc->filename, dirlen);
    strcpy(resolved + dirlen, path);
    node = load_file(doc->session, resolved, doc, ev->start_mark.line);
    free(resolved);
    return node;
}

static yoml_t *load_scalar(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev)
{
    yoml_t *node;

    if (ev->data.scalar.tag != NULL && strcmp((const char *)ev->data.scalar.tag, FILE_TAG) == 0) {
        if ((node = load_include(doc, ev)) == NULL)
            return NULL;
    } else {
        if ((node = new_node(doc, YOML_TYPE_SCALAR, sizeof(yoml_t), &ev->start_mark, ev->data.scalar.anchor,
                             ev->data.scalar.tag)) == NULL)
            return NULL;
        if ((node->data.scalar = malloc(ev->data.scalar.length + 1)) == NULL) {
            set_error(doc->session, doc->filename, ev->start_mark.line, "out of memory");
            goto Error;
        }
        memcpy(node->data.scalar, ev->data.scalar.value, ev->data.scalar.length + 1);
    }
    /* `&name !file x` names the included document */
    if (add_anchor(doc, ev->data.scalar.anchor, node, &ev->start_mark) != 0)
        goto Error;
    return node;

Error:
    yoml_free(node, NULL);
    return NULL;
}

/* Makes room for one more element in a sequence or mapping node (their size and elements share offsets). */
static int reserve_one(struct st_sig_yaml_doc_t *doc, yoml_t **node, size_t *capacity, size_t elem_size)
{
    yoml_t *grown;

    if ((*node)->data.sequence.size < *capacity)
        return 0;
    if ((grown = realloc(*node, offsetof(yoml_t, data.sequence.elements) + *capacity * 2 * elem_size)) == NULL) {
        set_error(doc->session, doc->filename, (*node)->line, "out of memory");
        return -1;
    }
    *node = grown;
    *capacity *= 2;
    return 0;
}

static yoml_t *load_sequence(struct st_sig_yaml_doc_t *doc, yaml_event_t *start, size_t nesting)
{
    size_t capacity = 4, size = offsetof(yoml_t, data.sequence.elements) + capacity * sizeof(yoml_t *);
    yoml_t *node, *child;
    yaml_event_t ev;

    if ((node = new_node(doc, YOML_TYPE_SEQUENCE, size, &start->start_mark, start->data.sequence_start.anchor,
                         start->data.sequence_start.tag)) == NULL)
        return NULL;
    for (;;) {
        if (next_event(doc, &ev) != 0)
            goto Error;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        child = load_node(doc, &ev, nesting + 1);
        yaml_event_delete(&ev);
        if (child == NULL)
            goto Error;
        if (reserve_one(doc, &node, &capacity, sizeof(yoml_t *)) != 0) {
            yoml_free(child, NULL);
            goto Error;
        }
        node->data.sequence.elements[node->data.sequence.size++] = child;
    }
    if (add_anchor(doc, start->data.sequence_start.anchor, node, &start->start_mark) != 0)
        goto Error;
    return node;

Error:
    yoml_free(node, NULL);
    return NULL;
}

static yoml_t *load_mapping(struct st_sig_yaml_doc_t *doc, yaml_event_t *start, size_t nesting)
{
    size_t capacity = 4, size = offsetof(yoml_t, data.mapping.elements) + capacity * sizeof(yoml_mapping_element_t);
    yoml_t *node, *key = NULL, *value;
    yaml_event_t ev;

    if ((node = new_node(doc, YOML_TYPE_MAPPING, size, &start->start_mark, start->data.mapping_start.anchor,
                         start->data.mapping_start.tag)) == NULL)
        return NULL;
    for (;;) {
        if (next_event(doc, &ev) != 0)
            goto Error;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        key = load_node(doc, &ev, nesting + 1);
        yaml_event_delete(&ev);
        if (key == NULL)
            goto Error;
        /* libyaml always emits a value event after a key (an empty scalar when the value is missing) */
        if (next_event(doc, &ev) != 0)
            goto Error;
        value = load_node(doc, &ev, nesting + 1);
        yaml_event_delete(&ev);
        if (value == NULL)
            goto Error;
        if (reserve_one(doc, &node, &capacity, sizeof(yoml_mapping_element_t)) != 0) {
            yoml_free(value, NULL);
            goto Error;
        }
        /* duplicate keys are appended like any other: h2o configurations repeat `listen:` */
        node->data.mapping.elements[node->data.mapping.size++] = (yoml_mapping_element_t){key, value};
        key = NULL;
    }
    if (add_anchor(doc, start->data.mapping_start.anchor, node, &start->start_mark) != 0)
        goto Error;
    return node;

Error:
    yoml_free(key, NULL);
    yoml_free(node, NULL);
    return NULL;
}

/* Builds the node that starts with `ev` (which the caller still owns and deletes), consuming events up to its end. */
static yoml_t *load_node(struct st_sig_yaml_doc_t *doc, yaml_event_t *ev, size_t nesting)
{
    const yaml_char_t *tag = NULL;

    if (nesting >= MAX_NESTING) {
        set_error(doc->session, doc->filename, ev->start_mark.line, "nested more than %d levels deep", MAX_NESTING);
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        return resolve_alias(doc, ev);
    case YAML_SCALAR_EVENT:
        return load_scalar(doc, ev);
    case YAML_SEQUENCE_START_EVENT:
        tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        tag = ev->data.mapping_start.tag;
        break;
    default: /* libyaml's grammar only lets node events through here */
        set_error(doc->session, doc->filename, ev->start_mark.line, "unexpected YAML event %d", (int)ev->type);
        return NULL;
    }
    if (tag != NULL && strcmp((const char *)tag, FILE_TAG) == 0) {
        set_error(doc->session, doc->filename, ev->start_mark.line, FILE_TAG " expects a file name, not a collection");
        return NULL;
    }
    return ev->type == YAML_SEQUENCE_START_EVENT ? load_sequence(doc, ev, nesting) : load_mapping(doc, ev, nesting);
}

/* Parses the `len` bytes at `text`, which must hold exactly one non-empty document. */
static yoml_t *load_stream(struct st_sig_yaml_session_t *session, const char *filename, const char *text, size_t len)
{
    struct st_sig_yaml_doc_t doc = {.session = session, .filename = filename, .text = text, .len = len};
    yaml_event_t ev;
    yoml_t *root = NULL;
    size_t i;

    ++session->depth;
    if (!yaml_parser_initialize(&doc.parser)) {
        set_error(session, filename, NO_LINE, "out of memory");
        --session->depth;
        return NULL;
    }
    /* libyaml asserts a non-NULL input, which an empty `text` may well be */
    yaml_parser_set_input_string(&doc.parser, (const unsigned char *)(text != NULL ? text : ""), len);

    /* STREAM-START, then DOCUMENT-START (or STREAM-END when there is no document at all) */
    if (next_event(&doc, &ev) != 0)
        goto Error;
    yaml_event_delete(&ev);
    if (next_event(&doc, &ev) != 0)
        goto Error;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        goto Empty;
    }
    yaml_event_delete(&ev);

    /* the root node, then DOCUMENT-END */
    if (next_event(&doc, &ev) != 0)
        goto Error;
    root = load_node(&doc, &ev, 0);
    yaml_event_delete(&ev);
    if (root == NULL || next_event(&doc, &ev) != 0)
        goto Error;
    yaml_event_delete(&ev);

    /* anything but STREAM-END is a second document */
    if (next_event(&doc, &ev) != 0)
        goto Error;
    if (ev.type != YAML_STREAM_END_EVENT) {
        set_error(session, filename, ev.start_mark.line, "only one YAML document is allowed");
        yaml_event_delete(&ev);
        goto Error;
    }
    yaml_event_delete(&ev);

    /* `---` alone or `""`: nothing to configure, which is surely a mistake */
    if (root->type == YOML_TYPE_SCALAR && root->data.scalar[0] == '\0')
        goto Empty;
    goto Exit;

Empty:
    set_error(session, filename, 0, "empty configuration");
Error:
    yoml_free(root, NULL);
    root = NULL;
Exit:
    for (i = 0; i != doc.num_anchors; ++i)
        free(doc.anchors[i].name);
    free(doc.anchors);
    yaml_parser_delete(&doc.parser);
    --session->depth;
    return root;
}

/* Reads all of `fp` into a malloc'ed buffer. Returns 0, or -1 with errno set. */
static int read_all(FILE *fp, char **buf, size_t *len)
{
    size_t capacity = 4096;
    char *grown;

    *len = 0;
    if ((*buf = malloc(capacity)) == NULL)
        return -1;
    for (;;) {
        *len += fread(*buf + *len, 1, capacity - *len, fp);
        if (*len < capacity)
            break;
        if ((grown = realloc(*buf, capacity *= 2)) == NULL)
            goto Error;
        *buf = grown;
    }
    if (ferror(fp)) /* errno is still that of the failed read(2) */
        goto Error;
    return 0;

Error:
    free(*buf);
    *buf = NULL;
    return -1;
}

/* Loads `path`; `includer` is NULL for the top-level file, else the document whose line `include_line` says `!file`. */
static yoml_t *load_file(struct st_sig_yaml_session_t *session, const char *path, struct st_sig_yaml_doc_t *includer,
                         size_t include_line)
{
    FILE *fp = NULL;
    struct stat st;
    char *text = NULL;
    size_t len, i;
    yoml_t *root = NULL;

    if (session->depth > SIG_YAML_MAX_INCLUDE_DEPTH) {
        set_error(session, includer->filename, include_line, FILE_TAG " %s: includes nested more than %d deep", path,
                  SIG_YAML_MAX_INCLUDE_DEPTH);
        return NULL;
    }
    if ((fp = fopen(path, "r")) == NULL || fstat(fileno(fp), &st) != 0)
        goto OpenError;
    if (S_ISDIR(st.st_mode)) {
        errno = EISDIR; /* fopen(3) accepts a directory; reading it would fail with a vaguer message */
        goto OpenError;
    }
    for (i = 0; i != session->num_files; ++i) {
        if (session->files[i].dev == st.st_dev && session->files[i].ino == st.st_ino) {
            set_error(session, includer->filename, include_line, FILE_TAG " %s: include cycle (the file is already being loaded)",
                      path);
            goto Exit;
        }
    }
    if (read_all(fp, &text, &len) != 0) {
        set_error(session, path, NO_LINE, "cannot read: %s", strerror(errno));
        goto Exit;
    }
    session->files[session->num_files].dev = st.st_dev;
    session->files[session->num_files].ino = st.st_ino;
    ++session->num_files;
    root = load_stream(session, path, text, len);
    --session->num_files;
    goto Exit;

OpenError:
    if (includer == NULL)
        set_error(session, path, NO_LINE, "cannot open: %s", strerror(errno));
    else
        set_error(session, includer->filename, include_line, FILE_TAG " %s: cannot open: %s", path, strerror(errno));
Exit:
    free(text);
    if (fp != NULL)
        fclose(fp);
    return root;
}

yoml_t *sig_yaml_load_file(const char *path, char *errbuf, size_t errbuf_size)
{
    struct st_sig_yaml_session_t session = {.errbuf = errbuf, .errbuf_size = errbuf_size};
    return load_file(&session, path, NULL, 0);
}

yoml_t *sig_yaml_load_string(const char *text, size_t len, const char *name_for_errors, char *errbuf, size_t errbuf_size)
{
    struct st_sig_yaml_session_t session = {.errbuf = errbuf, .errbuf_size = errbuf_size};
    return load_stream(&session, name_for_errors, text, len);
}
