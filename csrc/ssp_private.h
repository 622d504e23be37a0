/*
 * Every engine header at once, for the C tests and fuzz targets (tests/c),
 * which reach into most of them. The engine's own files include only the
 * headers they use, each named after the file that defines what it
 * declares (error.h: error.c, ...), and these headers of types alone:
 *
 *   engine_state.h     the engine struct the engine-level files share
 *   store_ops.h        the store interface: the backends' table of operations
 *   rules/room_state.h a room's state as the rules read it
 */
#ifndef SSP_PRIVATE_H
#define SSP_PRIVATE_H

#include "audit_chart.h"
#include "audit_flood.h"
#include "audit_queue.h"
#include "audit_throttle.h"
#include "config.h"
#include "engine_state.h"
#include "files.h"
#include "group.h"
#include "groups.h"
#include "journal.h"
#include "reconcile_common.h"
#include "roster_feed.h"
#include "roster_index.h"
#include "ssp.h"
#include "store.h"
#include "store_ops.h"
#include "strmap.h"
#include "util.h"

#endif
