/*
 * sig_share.h: which share/ directory this binary uses.
 */
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/sig_share.h"

#if !defined(SIG_PKGDATADIR) || !defined(SIG_BUILDDIR) || !defined(SIG_SRCSHAREDIR)
#error "SIG_PKGDATADIR, SIG_BUILDDIR and SIG_SRCSHAREDIR must be defined by the build (Makefile.am)"
#endif

static const char *share_dir = SIG_PKGDATADIR;
static pthread_once_t share_once = PTHREAD_ONCE_INIT;

/* The uninstalled binary is the one whose own file lies in the build tree it was compiled in. Both sides are
 * resolved (symlinks, `..`), so a build dir reached through a link still counts. */
static void decide(void)
{
    char exe[PATH_MAX], builddir[PATH_MAX], *slash;

    if (realpath("/proc/self/exe", exe) == NULL || realpath(SIG_BUILDDIR, builddir) == NULL)
        return;
    if ((slash = strrchr(exe, '/')) == NULL)
        return;
    *slash = '\0';
    if (strcmp(exe, builddir) == 0)
        share_dir = SIG_SRCSHAREDIR;
}

const char *sig_share_dir(void)
{
    pthread_once(&share_once, decide);
    return share_dir;
}

/* Every path handed out stays in this list, so each name costs one allocation for the process's life. */
struct st_sig_share_path_t {
    struct st_sig_share_path_t *next;
    char path[1];
};
static struct st_sig_share_path_t *paths;
static pthread_mutex_t paths_mutex = PTHREAD_MUTEX_INITIALIZER;

const char *sig_share_path(const char *name)
{
    const char *dir = sig_share_dir(); /* the same for the whole process */
    size_t dirlen = strlen(dir), len = dirlen + 1 + strlen(name) + 1;
    struct st_sig_share_path_t *p;

    pthread_mutex_lock(&paths_mutex);
    for (p = paths; p != NULL; p = p->next)
        if (strcmp(p->path + dirlen + 1, name) == 0)
            goto Exit;
    if ((p = malloc(offsetof(struct st_sig_share_path_t, path) + len)) == NULL)
        abort();
    snprintf(p->path, len, "%s/%s", dir, name);
    p->next = paths;
    paths = p;
Exit:
    pthread_mutex_unlock(&paths_mutex);
    return p->path;
}
