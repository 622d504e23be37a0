/*
 * The ids the engine's input names (ids.c): Matrix user ids and school ids,
 * with one set of rules for the config, the admin API, the CLI (through the
 * binding), the journal replay and the PostgreSQL loader.
 */
#ifndef SSP_IDS_H
#define SSP_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* A school id: 1 to SSP_SCHOOL_ID_MAX bytes of valid UTF-8 with no white
 * space (ssp_is_white_space) and no control character (ssp_is_control_char;
 * NUL included). The one rule of the config's schools, the admin API, the
 * roster feed, the command line, the journal replay and the PostgreSQL
 * loader. Fails with SSP_ERR_INPUT, the message starting with path and
 * naming the code point. */
int ssp_check_school_id(const char *path, const char *school, size_t len, ssp_error *err);
/* Unicode's White_Space property (PropList.txt, unchanged since 6.3): the
 * 25 code points U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F and U+3000. */
bool ssp_is_white_space(uint32_t code_point);
/* General category Cc: U+0000..U+001F and U+007F..U+009F. */
bool ssp_is_control_char(uint32_t code_point);

#endif
