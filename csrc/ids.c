/*
 * The ids the engine's input names: Matrix user ids and school ids. One
 * set of rules for the config, the admin API, the CLI (through the
 * binding), the journal replay and the PostgreSQL loader.
 */
#include <string.h>

#include "ids.h"
#include "util.h"

static bool is_control(unsigned char ch)
{
    return ch < 0x20 || ch == 0x7f;
}

/* The Matrix grammar: "@" localpart ":" server_name. The localpart is the
 * historical user id grammar (printable ASCII but ":"); the server name is
 * a host name, an IPv4 address or a bracketed IPv6 address, with an
 * optional port. */
static bool server_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']';
}

static const char *user_id_problem(const char *user_id, size_t len)
{
    const char *colon;

    if (memchr(user_id, '\0', len) != NULL)
        return "contains a NUL character";
    for (size_t i = 0; i < len; i++) {
        if (is_control((unsigned char)user_id[i]))
            return "contains a control character";
    }
    if (len > SSP_USER_ID_MAX)
        return "is longer than 255 bytes";
    colon = len > 0 ? memchr(user_id, ':', len) : NULL;
    if (len < 4 || user_id[0] != '@' || colon == NULL || colon == user_id + 1 ||
        colon == user_id + len - 1)
        return "expected a Matrix user id (@user:server)";
    for (const char *p = user_id + 1; p < colon; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p > '~')
            return "expected a Matrix user id (@user:server); the localpart is printable "
                   "ASCII without spaces";
    }
    for (const char *p = colon + 1; p < user_id + len; p++) {
        if (!server_char((unsigned char)*p))
            return "expected a Matrix user id (@user:server); the server name is a host "
                   "name with an optional port";
    }
    return NULL;
}

bool ssp_user_id_valid(const char *user_id)
{
    return user_id_problem(user_id, strlen(user_id)) == NULL;
}

int ssp_check_user_id(const char *path, const char *user_id, size_t len,
                             const char *server_name, ssp_error *err)
{
    const char *problem = user_id_problem(user_id, len);

    if (problem != NULL)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: %s", path, problem);
    if (server_name != NULL && strcmp(strchr(user_id, ':') + 1, server_name) != 0)
        return ssp_fail(err, SSP_ERR_INPUT,
                        "%s: %s is a user of another server; the roster holds users of %s only",
                        path, user_id, server_name);
    return 0;
}

bool ssp_is_white_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

bool ssp_is_control_char(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int ssp_check_school_id(const char *path, const char *school, size_t len, ssp_error *err)
{
    if (len == 0 || len > SSP_SCHOOL_ID_MAX)
        return ssp_fail(err, SSP_ERR_INPUT, "%s: expected a school id of 1 to %d bytes", path,
                        SSP_SCHOOL_ID_MAX);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = ssp_utf8_decode(school + i, len - i, &cp);

        if (n == 0)
            return ssp_fail(err, SSP_ERR_INPUT, "%s: is not valid UTF-8", path);
        /* Tab, newline and NEL are both: they are named as controls. */
        if (ssp_is_control_char(cp))
            return ssp_fail(err, SSP_ERR_INPUT, "%s: contains a control character", path);
        if (ssp_is_white_space(cp))
            return ssp_fail(err, SSP_ERR_INPUT,
                            "%s: contains a space (U+%04X); a school id has no white space "
                            "(Unicode White_Space, the no-break spaces included)",
                            path, (unsigned)cp);
        i += n;
    }
    return 0;
}
