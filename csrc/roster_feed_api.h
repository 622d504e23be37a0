/*
 * The roster feed inside the engine (roster_feed_api.c). The binding's
 * calls, ssp_roster_feed_start and ssp_roster_feed_status, are in ssp.h.
 */
#ifndef SSP_ROSTER_FEED_API_H
#define SSP_ROSTER_FEED_API_H

#include "config.h"
#include "roster_feed.h"
#include "ssp.h"

/* The broker URL from roster_feed.url, the file named by url_file (its
 * content, surrounding white space removed) or the environment variable
 * named by url_env; checked. *url is the caller's to free. Reads a file. */
int ssp_feed_resolve_url(const ssp_config *config, char **url, ssp_error *err);

/* Applies one message body through ssp_roster_upsert_batch and says what to
 * do with the message. On REJECTED and RETRY err holds why (for REJECTED the
 * key path, as POST /roster names it). Blocks on the store's fsync. */
ssp_feed_outcome ssp_feed_apply(ssp_engine *engine, const char *body, size_t len,
                                size_t *upserted, ssp_error *err);

#endif
