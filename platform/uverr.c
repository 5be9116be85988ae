#include "platform/uverr.h"

#include <errno.h>

#include <uv.h>

int pos_uv_errno(int uv_err)
{
    if (uv_err >= 0) {
        return 0;
    }
    switch (uv_err) {
    case UV_EOF:
        return -ECONNRESET;
    case UV_EAI_ADDRFAMILY:
    case UV_EAI_AGAIN:
    case UV_EAI_FAIL:
    case UV_EAI_NODATA:
    case UV_EAI_NONAME:
    case UV_EAI_SERVICE:
    case UV_EAI_FAMILY:
    case UV_EAI_SOCKTYPE:
    case UV_EAI_BADFLAGS:
    case UV_EAI_PROTOCOL:
    case UV_EAI_OVERFLOW:
    case UV_EAI_BADHINTS:
        return -EHOSTUNREACH;
    case UV_EAI_MEMORY:
        return -ENOMEM;
    case UV_EAI_CANCELED:
        return -ECANCELED;
    default:
        /* On Unix every other UV_E* is a negated errno. */
        return uv_err > -4096 ? uv_err : -EIO;
    }
}
