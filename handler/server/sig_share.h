/*
 * Where the helper programs shipped in share/ are (fetch-ocsp-response, the default `ocsp-update-cmd`;
 * annotate-backtrace-symbols, the default `crash-handler`). An installed binary uses the installed copies,
 * $(pkgdatadir) (Makefile.am: SIG_PKGDATADIR); the uninstalled binary in its build tree (SIG_BUILDDIR) uses
 * the source tree's share/ (SIG_SRCSHAREDIR), so tests and dev runs see the scripts they build with and never
 * an older installed copy. Which one the binary is, is decided once from /proc/self/exe, not from what
 * happens to exist on disk.
 */
#ifndef SIG_SHARE_H
#define SIG_SHARE_H

/** The directory of the helpers for this binary (no trailing slash). Thread-safe; lives until exit. */
const char *sig_share_dir(void);

/** "DIR/NAME" for the helper NAME, DIR being sig_share_dir(). The same string for the same NAME; lives until exit. */
const char *sig_share_path(const char *name);

#endif
