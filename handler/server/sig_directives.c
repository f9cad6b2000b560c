/*
 * `--list-directives` (sig_directives.h): a configuration with every registration, walked through
 * libh2o's list of configurators and each one's commands.
 */
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_directives.h"
#include "server/sig_server.h"

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sig_directives_print(FILE *fp)
{
    sig_server_conf_t *conf = sig_server_conf_new(NULL);
    H2O_VECTOR(const char *) names = {NULL};
    h2o_linklist_t *node;
    size_t i;
    int ret = 0;

    for (node = conf->globalconf.configurators.next; node != &conf->globalconf.configurators; node = node->next) {
        h2o_configurator_t *c = H2O_STRUCT_FROM_MEMBER(h2o_configurator_t, _link, node);
        for (i = 0; i != c->commands.size; ++i) {
            h2o_vector_reserve(NULL, &names, names.size + 1);
            names.entries[names.size++] = c->commands.entries[i].name;
        }
    }
    qsort(names.entries, names.size, sizeof(names.entries[0]), compare_names);
    for (i = 0; i != names.size; ++i)
        if (fprintf(fp, "%s\n", names.entries[i]) < 0)
            ret = -1;
    if (fflush(fp) != 0)
        ret = -1;

    free(names.entries);
    sig_server_conf_dispose(conf);
    return ret;
}
