/*
 * The configuration reference must match the directive table: every `signaling.*` directive has a
 * row in docs/configuration.md with its real default and bounds, and the doc names no directive the
 * table lacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "signaling/sig_signaling.h"
#include "tap.h"

static char *read_doc(void)
{
    const char *srcdir = getenv("srcdir");
    char path[1024];
    FILE *fp;
    char *text;
    long size;

    snprintf(path, sizeof(path), "%s/docs/configuration.md", srcdir != NULL ? srcdir : ".");
    if ((fp = fopen(path, "rb")) == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    size = ftell(fp);
    rewind(fp);
    text = calloc(1, (size_t)size + 1);
    if (fread(text, 1, (size_t)size, fp) != (size_t)size) {
        free(text);
        text = NULL;
    }
    fclose(fp);
    return text;
}

int main(void)
{
    char *doc = read_doc(), *p;
    const sig_directive_t *d;

    ok(doc != NULL, "docs/configuration.md is readable");
    if (doc == NULL)
        return done_testing();

    for (d = sig_signaling_directives; d->name != NULL; ++d) {
        char row[512];
        if (d->kind == SIG_DIRECTIVE_SIZE || d->kind == SIG_DIRECTIVE_U64)
            snprintf(row, sizeof(row), "| `%s` | %llu | %llu – %llu | %s |", d->name, d->default_value, d->min_value,
                     d->max_value, d->doc);
        else
            snprintf(row, sizeof(row), "| `%s` | %s | %s |", d->name, d->value_doc, d->doc);
        ok(strstr(doc, row) != NULL, "%s: documented with its default, bounds and the table's doc line", d->name);
        if (strstr(doc, row) == NULL)
            printf("#   expected row: %s\n", row);
    }
    /* every `signaling.X` the doc's tables name exists */
    for (p = doc; (p = strstr(p, "| `signaling.")) != NULL; ++p) {
        char name[128];
        size_t len = strcspn(p + 3, "`");
        int found = 0;
        snprintf(name, sizeof(name), "%.*s", (int)len, p + 3);
        for (d = sig_signaling_directives; d->name != NULL; ++d)
            found |= strcmp(d->name, name) == 0;
        ok(found, "documented directive %s exists", name);
    }
    free(doc);
    return done_testing();
}
