#include "agent/api/admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/msg/amount.h"
#include "platform/log.h"

bool pos_admin_may_drive(uid_t peer, uid_t self, uid_t owner)
{
    return peer == 0 || peer == self || peer == owner;
}

const char *pos_admin_reconcile_why(pos_payment_state_t state)
{
    switch (state) {
    case POS_PAY_UNKNOWN:
        return "outcome unknown (pinpad lost or agent interrupted): the card may have been "
               "charged, ask the acquirer";
    case POS_PAY_TIMED_OUT:
        return "no outcome from the pinpad in time: a late approval may have charged the card";
    default:
        return NULL;
    }
}

/* ---- who may ask ------------------------------------------------------------------ */

/* Root, the agent's user or the socket's owner; anybody else is answered
 * "-NOPERM <what> <why>: only root or ..." and the refusal is logged. */
static bool admin_authorised(pos_admin_t *admin, pos_localapi_reply_t *r, const char *what,
                             const char *why)
{
    struct stat st;
    uid_t peer;
    uid_t owner = geteuid();

    if (admin->opt.socket_path != NULL && stat(admin->opt.socket_path, &st) == 0) {
        owner = st.st_uid;
    }
    if (pos_localapi_reply_peer_uid(r, &peer) == 0 && pos_admin_may_drive(peer, geteuid(), owner)) {
        return true;
    }
    char msg[200];
    snprintf(msg, sizeof(msg),
             "NOPERM %s %s: only root or the socket's owner (uid %u) may ask for it", what, why,
             (unsigned)owner);
    pos_localapi_reply_error(r, msg);
    POS_WARN("api", "%s refused: the peer (uid %d) is neither root nor uid %u", what,
             pos_localapi_reply_peer_uid(r, &peer) == 0 ? (int)peer : -1, (unsigned)owner);
    return false;
}

/* ---- JOURNAL ------------------------------------------------------------------ */

typedef struct admin_walk {
    pos_localapi_reply_t *r; /* NULL: count only */
    bool all;
    long long n;
} admin_walk_t;

static void admin_field(pos_localapi_reply_t *r, const char *name, const char *value)
{
    pos_localapi_reply_bulk(r, name, strlen(name));
    pos_localapi_reply_bulk(r, value, strlen(value));
}

static int admin_journal_visit(void *ctx, const pos_payment_record_t *rec)
{
    admin_walk_t *w = ctx;
    const char *why = pos_admin_reconcile_why(rec->state);
    char amount[POS_AMOUNT_TEXT_MAX];

    if (why == NULL && !w->all) {
        return 0;
    }
    if (w->n >= POS_ADMIN_JOURNAL_MAX) {
        return 1;
    }
    w->n++;
    if (w->r == NULL) {
        return 0;
    }
    if (pos_amount_format(rec->amount_minor, rec->currency.digits, amount, sizeof(amount)) < 0) {
        snprintf(amount, sizeof(amount), "%" PRId64, rec->amount_minor);
    }
    /* What the acquirer needs to find the payment: no more than a receipt
     * shows (the PAN is stored masked). */
    pos_localapi_reply_array_begin(w->r, 18);
    admin_field(w->r, "transaction_id", rec->transaction_id);
    admin_field(w->r, "state", pos_payment_state_name(rec->state));
    admin_field(w->r, "amount", amount);
    admin_field(w->r, "currency", rec->currency.alpha);
    admin_field(w->r, "auth_code", rec->auth_code);
    admin_field(w->r, "masked_pan", rec->masked_pan);
    admin_field(w->r, "card_brand", rec->card_brand);
    admin_field(w->r, "reason", rec->reason);
    admin_field(w->r, "reconcile", why != NULL ? why : "");
    return 0;
}

static int admin_journal(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    pos_admin_t *admin = owner;
    pos_journal_t *j = admin->opt.journal(admin->opt.ctx);
    admin_walk_t w = {NULL, false, 0};
    int rc;

    /* Card data (masked PANs, authorisation codes): the technician's, not
     * the POS application's nor anybody else's on the socket. */
    if (!admin_authorised(admin, r, "the payment journal",
                          "holds card data (masked PANs, authorisation codes)")) {
        return 0;
    }
    if (argc == 2) {
        if (lens[1] != 3 || strncasecmp(argv[1], "ALL", 3) != 0) {
            pos_localapi_reply_error(r, "ERR syntax error: JOURNAL [ALL]");
            return 0;
        }
        w.all = true;
    }
    if (j == NULL) {
        pos_localapi_reply_error(r, "ERR no payment journal: the local store is not open");
        return 0;
    }
    /* Two walks (count, then answer): the reply's length comes first. The
     * loop does not run in between, so both see the same records. */
    rc = pos_journal_list(j, admin_journal_visit, &w);
    if (rc < 0) {
        POS_WARN("api", "JOURNAL: cannot read the journal: %s", strerror(-rc));
        return rc;
    }
    pos_localapi_reply_array_begin(r, w.n);
    w.r = r;
    w.n = 0;
    rc = pos_journal_list(j, admin_journal_visit, &w);
    return rc < 0 ? rc : 0;
}

/* ---- DEVICES ------------------------------------------------------------------ */

static const char admin_device_names[POS_DEV_COUNT][8] = {"display", "printer", "pinpad"};

static int admin_device_test(pos_admin_t *admin, pos_localapi_reply_t *r, const char *name,
                             size_t len)
{
    pos_dev_slot_t which;
    int rc;

    if (len == 7 && strncasecmp(name, "PRINTER", 7) == 0) {
        which = POS_DEV_PRINTER;
    } else if (len == 7 && strncasecmp(name, "DISPLAY", 7) == 0) {
        which = POS_DEV_DISPLAY;
    } else {
        pos_localapi_reply_error(r, "ERR syntax error: DEVICES TEST PRINTER|DISPLAY");
        return 0;
    }
    if (!admin_authorised(admin, r, which == POS_DEV_PRINTER ? "a test print" : "a test display",
                          "makes the till act")) {
        return 0;
    }
    rc = admin->opt.device_test(admin->opt.ctx, which);
    if (rc == -EBUSY) {
        pos_localapi_reply_error(r, "BUSY a payment is running: try again when it is over");
    } else if (rc != 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "ERR the %s did not take it: %s", admin_device_names[which],
                 rc == -EPERM ? "the device is not usable" : strerror(-rc));
        pos_localapi_reply_error(r, msg);
    } else {
        POS_INFO("api", "a test %s on the %s, asked on the local socket",
                 which == POS_DEV_PRINTER ? "print" : "message", admin_device_names[which]);
        pos_localapi_reply_status(r, "OK");
    }
    return 0;
}

static int admin_devices(void *owner, pos_localapi_reply_t *r, int argc, const char **argv,
                         const size_t *lens)
{
    pos_admin_t *admin = owner;
    pos_dev_state_t st[POS_DEV_COUNT];

    if (argc == 3 && lens[1] == 4 && strncasecmp(argv[1], "TEST", 4) == 0) {
        return admin_device_test(admin, r, argv[2], lens[2]);
    }
    if (argc != 1) {
        pos_localapi_reply_error(r, "ERR syntax error: DEVICES [TEST PRINTER|DISPLAY]");
        return 0;
    }
    admin->opt.devices(admin->opt.ctx, st);
    pos_localapi_reply_array_begin(r, POS_DEV_COUNT);
    for (size_t i = 0; i < POS_DEV_COUNT; i++) {
        pos_localapi_reply_array_begin(r, 4);
        admin_field(r, "device", admin_device_names[i]);
        admin_field(r, "state", pos_dev_state_name(st[i]));
    }
    return 0;
}

static const pos_localapi_command_t admin_commands[] = {
    {"JOURNAL", admin_journal, 1, 2},
    {"DEVICES", admin_devices, 1, 3},
};

void pos_admin_attach(pos_admin_t *admin, pos_localapi_t *s, const pos_admin_options_t *opt)
{
    admin->opt = *opt;
    pos_localapi_add_commands(s, admin_commands, sizeof(admin_commands) / sizeof(admin_commands[0]),
                              admin);
}
