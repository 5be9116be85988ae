#ifndef TESTS_SUPPORT_PRELOAD_H
#define TESTS_SUPPORT_PRELOAD_H

/*
 * What the LD_PRELOAD fault shims (slowfs.c, powercut.c) share: calling
 * the definition of a function that comes after the shim, libc's or an
 * interceptor's of a runtime loaded before it (ASan's).
 *
 *     ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
 *     {
 *         NEXT(pwrite_fn, pwrite);
 *         ssize_t rc = real_pwrite(fd, buf, n, off);
 *         ...
 */

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The libc calls both shims wrap (the includer defines _GNU_SOURCE and
 * leaves _FILE_OFFSET_BITS unset: both off_t and off64_t forms exist). */
typedef int (*fd_fn)(int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pwrite64_fn)(int, const void *, size_t, off64_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*pwritev_fn)(int, const struct iovec *, int, off_t);
typedef ssize_t (*pwritev64_fn)(int, const struct iovec *, int, off64_t);

/* The next definition of name after this library, looked up once, on
 * first use (from any thread). */
static inline void *pos_preload_next(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

    if (fn == NULL) {
        fn = dlsym(RTLD_NEXT, name);
        if (fn == NULL) {
            abort(); /* no libc function by that name: nothing sane to do */
        }
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}

/* real_<name>, of function type type, in the calling function. */
#define NEXT(type, name)                                                                           \
    static void *next_##name;                                                                      \
    type real_##name = (type)pos_preload_next(&next_##name, #name)

#endif /* TESTS_SUPPORT_PRELOAD_H */
