/*
 * test_yaml.c: the YAML loader (handler/server/sig_yaml.c) and our yoml.h against libh2o's configurator.
 *
 * Run under valgrind or ASan: every tree is released with yoml_free(), so a leak or a refcount mistake shows there.
 * Fixture files for `!file` are written into a mkdtemp(3) directory that is removed at the end.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_yaml.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test_yaml.XXXXXX";
static char *created[64]; /* files and directories to remove at the end, in creation order */
static size_t num_created;

/* Returns "<tmpdir>/<name>" in a static buffer (one at a time). */
static const char *tmp_path(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
    return buf;
}

static void write_file(const char *name, const char *content)
{
    const char *path = tmp_path(name);
    FILE *fp = fopen(path, "w");
    if (fp == NULL || fputs(content, fp) < 0 || fclose(fp) != 0) {
        perror(path);
        exit(1);
    }
    created[num_created++] = strdup(path);
}

static void make_dir(const char *name)
{
    const char *path = tmp_path(name);
    if (mkdir(path, 0700) != 0) {
        perror(path);
        exit(1);
    }
    created[num_created++] = strdup(path);
}

static void remove_fixtures(void)
{
    while (num_created != 0) {
        char *path = created[--num_created];
        if (remove(path) != 0)
            perror(path);
        free(path);
    }
    rmdir(tmpdir);
}

static yoml_t *load(const char *text, const char *name, char *errbuf)
{
    return sig_yaml_load_string(text, strlen(text), name, errbuf, 256);
}

/* Loads `text`, expects failure with exactly `want` as the message. */
static void load_fails(const char *text, const char *name, const char *want, const char *what)
{
    char errbuf[256] = "";
    yoml_t *root = load(text, name, errbuf);
    ok(root == NULL, "%s: fails", what);
    is_str(errbuf, want, "%s: message", what);
    yoml_free(root, NULL);
}

static void test_layout(void)
{
    /* the _Static_asserts in yoml.h already compiled; repeat the key offsets so they appear in the TAP log */
    is_int(offsetof(yoml_t, line), 16, "yoml_t.line at 16");
    is_int(offsetof(yoml_t, _refcnt), 48, "yoml_t._refcnt at 48");
    is_int(offsetof(yoml_t, data.mapping.elements), 64, "mapping elements at 64");
}

static void test_basic(void)
{
    char errbuf[256] = "";
    yoml_t *root = load("# comment\n"
                        "name: test\n"
                        "list:\n"
                        "  - a\n"
                        "  - 1\n"
                        "map: {k: v}\n",
                        "conf/basic.yaml", errbuf);

    if (!ok(root != NULL, "basic document loads")) {
        printf("# %s\n", errbuf);
        return;
    }
    is_int(root->type, YOML_TYPE_MAPPING, "root is a mapping");
    is_int(root->data.mapping.size, 3, "three entries");
    is_int(root->line, 1, "root starts on line 2 (0-based 1)");
    is_int(root->_refcnt, 1, "root refcnt is 1");
    is_str(root->filename, "conf/basic.yaml", "filename recorded");

    yoml_t *name = yoml_get(root, "name");
    ok(name != NULL && name->type == YOML_TYPE_SCALAR, "name is a scalar");
    is_str(name->data.scalar, "test", "name value");
    is_int(name->column, 6, "name value column");
    ok(name->tag == NULL && name->anchor == NULL, "no tag nor anchor");

    yoml_t *list = yoml_get(root, "list");
    is_int(list->type, YOML_TYPE_SEQUENCE, "list is a sequence");
    is_int(list->data.sequence.size, 2, "two items");
    is_str(list->data.sequence.elements[1]->data.scalar, "1", "scalars stay strings");
    is_int(list->data.sequence.elements[1]->line, 4, "second item on line 5");
    is_str(list->data.sequence.elements[1]->filename, "conf/basic.yaml", "every node has the filename");
    ok(list->data.sequence.elements[1]->filename != root->filename, "filename is copied per node");

    yoml_t *map = yoml_get(root, "map");
    is_int(map->type, YOML_TYPE_MAPPING, "flow mapping");
    is_str(yoml_get(map, "k")->data.scalar, "v", "flow mapping value");
    ok(yoml_get(map, "nope") == NULL, "yoml_get of a missing key is NULL");
    ok(yoml_get(name, "k") == NULL, "yoml_get on a scalar is NULL");
    yoml_free(root, NULL);

    /* enough items to make the loader grow its arrays several times */
    char big[4096] = "[";
    for (int i = 0; i < 300; ++i)
        strcat(big, "x,");
    strcat(big, "end]");
    root = load(big, "big.yaml", errbuf);
    ok(root != NULL && root->data.sequence.size == 301, "301-item sequence");
    is_str(root->data.sequence.elements[300]->data.scalar, "end", "last item intact");
    yoml_free(root, NULL);
}

static void test_duplicates_and_tags(void)
{
    char errbuf[256] = "";
    yoml_t *root = load("listen: 80\nlisten: 443\nother: !custom x\nstr: !!str 5\n", "dup.yaml", errbuf);

    if (!ok(root != NULL, "duplicate keys load")) {
        printf("# %s\n", errbuf);
        return;
    }
    is_int(root->data.mapping.size, 4, "duplicate key kept");
    is_str(root->data.mapping.elements[0].key->data.scalar, "listen", "first listen");
    is_str(root->data.mapping.elements[0].value->data.scalar, "80", "first listen value");
    is_str(root->data.mapping.elements[1].key->data.scalar, "listen", "second listen");
    is_str(root->data.mapping.elements[1].value->data.scalar, "443", "second listen value, in order");
    is_str(yoml_get(root, "listen")->data.scalar, "80", "yoml_get returns the first");
    is_str(yoml_get(root, "other")->tag, "!custom", "unknown tag kept");
    is_str(yoml_get(root, "str")->tag, "tag:yaml.org,2002:str", "!! tag kept resolved");
    yoml_free(root, NULL);

    root = load("<<: {a: 1}\n", "merge.yaml", errbuf);
    ok(root != NULL && yoml_get(root, "<<") != NULL && yoml_get(root, "a") == NULL, "merge keys are not expanded");
    yoml_free(root, NULL);
}

static void test_anchors(void)
{
    char errbuf[256] = "";
    yoml_t *root = load("base: &b {x: 1}\n"
                        "use1: *b\n"
                        "s: &s hello\n"
                        "use2: [*b, *s]\n",
                        "anchor.yaml", errbuf);

    if (!ok(root != NULL, "anchors load")) {
        printf("# %s\n", errbuf);
        return;
    }
    yoml_t *base = yoml_get(root, "base"), *s = yoml_get(root, "s"), *use2 = yoml_get(root, "use2");
    ok(yoml_get(root, "use1") == base, "alias is the anchored node");
    ok(use2->data.sequence.elements[0] == base && use2->data.sequence.elements[1] == s, "aliases in a sequence");
    is_int(base->_refcnt, 3, "mapping shared three times");
    is_int(s->_refcnt, 2, "scalar shared twice");
    is_str(base->anchor, "b", "anchor name kept");
    ok(yoml_find_anchor(root, "s") == s, "yoml_find_anchor finds it");
    ok(yoml_find_anchor(root, "zz") == NULL, "yoml_find_anchor of an unknown name");
    yoml_free(root, NULL);

    root = load("a: &x 1\nb: &x 2\nc: *x\n", "redef.yaml", errbuf);
    is_str(yoml_get(root, "c")->data.scalar, "2", "a redefined anchor: the latest wins");
    yoml_free(root, NULL);

    load_fails("a: *nope\n", "alias.yaml", "alias.yaml:1: unknown alias *nope", "unknown alias");
    load_fails("a: &me [1, *me]\n", "self.yaml", "self.yaml:1: unknown alias *me", "alias inside its own anchor");
}

static void test_errors(void)
{
    char errbuf[256] = "", small[12];

    load_fails("a: 1\nb: c: d\n", "conf/x.conf", "conf/x.conf:2: YAML syntax error: mapping values are not allowed in this context",
               "syntax error");
    load_fails("a: 1\nb: 2\nc: \xff\n", "utf8.yaml", "utf8.yaml:3: YAML read error: invalid leading UTF-8 octet", "bad UTF-8");
    load_fails("a: [1, 2\n", "flow.yaml", "flow.yaml:2: YAML syntax error: did not find expected ',' or ']'", "unclosed flow");
    load_fails("", "empty.yaml", "empty.yaml:1: empty configuration", "empty string");
    load_fails("# nothing\n\n", "comment.yaml", "comment.yaml:1: empty configuration", "comments only");
    load_fails("---\n", "dashes.yaml", "dashes.yaml:1: empty configuration", "document without content");
    load_fails("a: 1\n---\nb: 2\n", "multi.yaml", "multi.yaml:2: only one YAML document is allowed", "two documents");
    load_fails("a: !file [x]\n", "tagseq.yaml", "tagseq.yaml:1: !file expects a file name, not a collection",
               "!file on a sequence");
    load_fails("a: !file ''\n", "tagempty.yaml", "tagempty.yaml:1: !file needs a file name", "!file without a name");

    char deep[1200];
    memset(deep, '[', 600);
    memset(deep + 600, ']', 600);
    yoml_t *root = sig_yaml_load_string(deep, sizeof(deep), "deep.yaml", errbuf, sizeof(errbuf));
    ok(root == NULL && strstr(errbuf, "deep.yaml:1: nested more than") == errbuf, "nesting is bounded: %s", errbuf);

    root = sig_yaml_load_file(tmp_path("missing.conf"), errbuf, sizeof(errbuf));
    ok(root == NULL, "missing file fails");
    char want[1024];
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", tmp_path("missing.conf"));
    is_str(errbuf, want, "missing file message");

    root = sig_yaml_load_file(tmpdir, errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s: cannot open: Is a directory", tmpdir);
    ok(root == NULL, "a directory fails");
    is_str(errbuf, want, "directory message");

    root = sig_yaml_load_string("a: [", 4, "conf/long-name.yaml", small, sizeof(small));
    ok(root == NULL, "error with a small buffer");
    is_str(small, "conf/long-n", "message truncated and terminated");
    ok(sig_yaml_load_string("a: [", 4, "x", NULL, 0) == NULL, "no error buffer at all");
}

static void test_include(void)
{
    char errbuf[256] = "", want[1024];
    yoml_t *root;

    make_dir("sub");
    write_file("main.yaml", "server-name: x\n"
                            "hosts: !file sub/hosts.yaml\n");
    write_file("sub/hosts.yaml", "# hosts\n"
                                 "default:\n"
                                 "  paths: !file paths.yaml\n");
    write_file("sub/paths.yaml", "/: {file.dir: /tmp}\n");

    root = sig_yaml_load_file(tmp_path("main.yaml"), errbuf, sizeof(errbuf));
    if (ok(root != NULL, "nested !file includes load")) {
        yoml_t *hosts = yoml_get(root, "hosts");
        is_int(hosts->type, YOML_TYPE_MAPPING, "include replaced by the document");
        is_str(hosts->filename, tmp_path("sub/hosts.yaml"), "included nodes name the included file");
        is_int(hosts->line, 1, "included node line is the included file's");
        is_int(hosts->_refcnt, 1, "included root has one reference");
        ok(hosts->tag == NULL, "the !file tag is gone");
        yoml_t *paths = yoml_get(yoml_get(hosts, "default"), "paths");
        is_str(paths->filename, tmp_path("sub/paths.yaml"), "path relative to the including file's directory");
        is_str(yoml_get(yoml_get(paths, "/"), "file.dir")->data.scalar, "/tmp", "content of the innermost file");
        is_str(root->filename, tmp_path("main.yaml"), "top-level nodes keep their file");
    } else {
        printf("# %s\n", errbuf);
    }
    yoml_free(root, NULL);

    /* a string's name_for_errors is the base for its includes; an anchored include can be aliased */
    char text[1024];
    snprintf(text, sizeof(text), "a: &p !file sub/paths.yaml\nb: *p\nc: !file %s\n", tmp_path("sub/paths.yaml"));
    root = sig_yaml_load_string(text, strlen(text), tmp_path("virtual.yaml"), errbuf, sizeof(errbuf));
    ok(root != NULL && yoml_get(root, "a") == yoml_get(root, "b"), "anchored include is aliased");
    ok(root != NULL && yoml_get(root, "a")->_refcnt == 2, "aliased include refcnt");
    ok(root != NULL && yoml_get(root, "c")->type == YOML_TYPE_MAPPING, "absolute include path");
    yoml_free(root, NULL);
    root = load("!file sub/paths.yaml", tmp_path("virtual.yaml"), errbuf);
    ok(root != NULL && yoml_get(root, "/") != NULL, "the root itself can be an include");
    yoml_free(root, NULL);

    /* a syntax error inside an included file names that file and line */
    write_file("sub/bad.yaml", "a: 1\nb: c: d\n");
    write_file("incbad.yaml", "x: !file sub/bad.yaml\n");
    root = sig_yaml_load_file(tmp_path("incbad.yaml"), errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s:2: YAML syntax error: mapping values are not allowed in this context",
             tmp_path("sub/bad.yaml"));
    ok(root == NULL, "error in an included file");
    is_str(errbuf, want, "message names the included file and line");

    /* a missing include names the including line */
    write_file("incmissing.yaml", "a: 1\nb: !file nope.yaml\n");
    root = sig_yaml_load_file(tmp_path("incmissing.yaml"), errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s:2: !file ", tmp_path("incmissing.yaml"));
    strcat(want, tmp_path("nope.yaml"));
    strcat(want, ": cannot open: No such file or directory");
    ok(root == NULL, "missing include fails");
    is_str(errbuf, want, "missing include message");

    write_file("empty.yaml", "");
    write_file("incempty.yaml", "a: !file empty.yaml\n");
    root = sig_yaml_load_file(tmp_path("incempty.yaml"), errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s:1: empty configuration", tmp_path("empty.yaml"));
    ok(root == NULL, "empty include fails");
    is_str(errbuf, want, "empty include message");

    /* cycles: a -> b -> a */
    write_file("cyc_a.yaml", "x: !file cyc_b.yaml\n");
    write_file("cyc_b.yaml", "y:\n  z: !file cyc_a.yaml\n");
    root = sig_yaml_load_file(tmp_path("cyc_a.yaml"), errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s:2: !file ", tmp_path("cyc_b.yaml"));
    strcat(want, tmp_path("cyc_a.yaml"));
    strcat(want, ": include cycle (the file is already being loaded)");
    ok(root == NULL, "include cycle fails");
    is_str(errbuf, want, "include cycle message");

    /* depth: d0 includes d1 ... includes d17; 16 levels below the top are fine, 17 are not */
    for (int i = 0; i <= 17; ++i) {
        char name[32], body[64];
        snprintf(name, sizeof(name), "d%d.yaml", i);
        if (i < 17)
            snprintf(body, sizeof(body), "next: !file d%d.yaml\n", i + 1);
        else
            snprintf(body, sizeof(body), "end: true\n");
        write_file(name, body);
    }
    root = sig_yaml_load_file(tmp_path("d1.yaml"), errbuf, sizeof(errbuf));
    ok(root != NULL, "16 nested includes load");
    yoml_free(root, NULL);
    root = sig_yaml_load_file(tmp_path("d0.yaml"), errbuf, sizeof(errbuf));
    snprintf(want, sizeof(want), "%s:1: !file ", tmp_path("d16.yaml"));
    strcat(want, tmp_path("d17.yaml"));
    strcat(want, ": includes nested more than 16 deep");
    ok(root == NULL, "17 nested includes fail");
    is_str(errbuf, want, "too deep message");
}

/*
 * Builds a fresh configuration, with the `file.*` directives if `with_file`, and applies `text` to it.
 * libh2o 2.2.5 leaks 32 bytes when apply fails with the file configurator registered (its on_enter copies the index
 * list and the matching on_exit is skipped on error), so the failing cases go without it.
 */
static int apply(const char *text, int with_file)
{
    h2o_globalconf_t conf;
    char errbuf[256] = "";
    yoml_t *root;
    int ret;

    if ((root = load(text, "h2o.conf", errbuf)) == NULL) {
        printf("# %s\n", errbuf);
        return -2;
    }
    h2o_config_init(&conf);
    if (with_file)
        h2o_file_register_configurator(&conf);
    ret = h2o_configurator_apply(&conf, root, 0);
    yoml_free(root, NULL);
    h2o_config_dispose(&conf);
    return ret;
}

static void test_libh2o(void)
{
    is_int(apply("hosts: {\"default\": {paths: {\"/\": {file.dir: /tmp}}}}\n", 1), 0, "libh2o applies our tree");
    fprintf(stderr, "# an 'unknown command' error from libh2o is expected next\n");
    is_int(apply("hosts: {\"default\": {paths: {\"/\": {}}}}\nno-such-directive: 1\n", 0), -1,
           "libh2o rejects an unknown directive");
    /* a `paths` mapping shared by alias (libh2o qsorts it in place) and a path configured by a sequence of mappings
       (libh2o builds its own mapping node holding references to ours, and frees it again) */
    is_int(apply("hosts:\n"
                 "  a.example: {paths: &p {/: {file.dir: /tmp}, /longer/path: {file.dir: /tmp}}}\n"
                 "  b.example: {paths: *p}\n"
                 "  c.example:\n"
                 "    paths:\n"
                 "      /:\n"
                 "        - file.dir: /tmp\n"
                 "        - file.dirlisting: ON\n",
                 1),
           0, "shared and sequence-form paths");
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_layout();
    test_basic();
    test_duplicates_and_tags();
    test_anchors();
    test_errors();
    test_include();
    test_libh2o();
    remove_fixtures();
    return done_testing();
}
