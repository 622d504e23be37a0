/*
 * Every engine-internal header at once, for the C tests and fuzz targets
 * (tests/c), which reach into most of them. The engine's own files include
 * only the per-concern headers they use:
 *
 *   util.h          errors and small helpers (util.c)
 *   strmap.h        string hash map (strmap.c)
 *   config.h        the validated config (config.c)
 *   roster_index.h  roster entries, input rules, the index (roster_index.c)
 *   audit_queue.h   the audit queue and its writers' side (audit_queue.c)
 *   reconcile_common.h        the reconcile state's shared checks and texts (reconcile_common.c)
 *   store_ops.h     the store interface: the backends' table of operations
 *   store.h         the store router (store.c)
 *   files.h         file helpers (files.c)
 *   journal.h       the roster journal (journal.c)
 *   engine.h        the engine struct (engine.c), the rules' texts
 */
#ifndef SSP_PRIVATE_H
#define SSP_PRIVATE_H

#include "audit_queue.h"
#include "config.h"
#include "engine.h"
#include "files.h"
#include "journal.h"
#include "reconcile_common.h"
#include "roster_feed.h"
#include "roster_feed_api.h"
#include "roster_index.h"
#include "ssp.h"
#include "store.h"
#include "store_ops.h"
#include "strmap.h"
#include "util.h"

#endif
