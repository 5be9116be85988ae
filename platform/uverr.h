#ifndef PLATFORM_UVERR_H
#define PLATFORM_UVERR_H

/*
 * The one place libuv error codes become negative errnos: on Unix UV_E*
 * are negated errnos already, except end-of-file (-ECONNRESET) and the
 * resolver's UV_EAI_* codes (-EHOSTUNREACH, -ENOMEM, -ECANCELED).
 * Returns 0 for uv_err >= 0.
 */
int pos_uv_errno(int uv_err);

#endif /* PLATFORM_UVERR_H */
