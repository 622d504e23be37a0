/*
 * The ids the engine's input names (ids.c): Matrix user ids and school ids,
 * with one set of rules for the config, the admin API, the CLI (through the
 * binding), the journal replay and the PostgreSQL loader.
 */
#ifndef SSP_IDS_H
#define SSP_IDS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define SSP_USER_ID_MAX 255
#define SSP_SCHOOL_ID_MAX 255

/* A Matrix user id: "@" localpart ":" server, at most 255 bytes, the
 * localpart printable ASCII without ":", the server a host name (letters,
 * digits, ".", "-"), IPv4 or [IPv6] address, optional ":port". */
bool ssp_user_id_valid(const char *user_id);
/* The same for len bytes (NUL bytes included, which fail), and, unless
 * server_name is NULL, a user of that server. Fails with SSP_ERR_INPUT and a
 * message starting with path. */
int ssp_check_user_id(const char *path, const char *user_id, size_t len, const char *server_name,
                      ssp_error *err);
/* A school id: 1 to SSP_SCHOOL_ID_MAX bytes, no control character (below
 * 0x20, 0x7f; NUL included) and no space, as in the config. */
int ssp_check_school_id(const char *path, const char *school, size_t len, ssp_error *err);

#endif
