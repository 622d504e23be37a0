/*
 * Facts of the Matrix spec and of Synapse that the rules depend on but that
 * are not school policy: how room versions hand out power, and what counts
 * as an emoji reaction key. Pure functions of their input.
 */
#include <string.h>

#include "ssp.h"

/* Room versions in which power comes from m.room.power_levels alone: "1"
 * to "11" and these two experimental ones. Every other version (12,
 * org.matrix.hydra.11, and newer ones this list does not know yet) gives the
 * room's creators unlimited power (MSC4289): a version we do not know is
 * read the way Synapse reads the newest ones. */
static const char *const LEGACY_EXPERIMENTAL_VERSIONS[] = {
    "org.matrix.msc3757.10",
    "org.matrix.msc3757.11",
};

bool ssp_room_version_creators_have_power(const char *version, size_t len)
{
    if (version == NULL)
        return false; /* missing: Synapse reads it as version 1 */
    if (len == 1 && version[0] >= '1' && version[0] <= '9')
        return false;
    if (len == 2 && version[0] == '1' && (version[1] == '0' || version[1] == '1'))
        return false;
    for (size_t i = 0; i < sizeof LEGACY_EXPERIMENTAL_VERSIONS / sizeof LEGACY_EXPERIMENTAL_VERSIONS[0]; i++) {
        if (strlen(LEGACY_EXPERIMENTAL_VERSIONS[i]) == len &&
            memcmp(LEGACY_EXPERIMENTAL_VERSIONS[i], version, len) == 0)
            return false;
    }
    return true;
}

/* Decodes one UTF-8 sequence at s[*i]; returns the code point and advances
 * *i, or returns -1 on an invalid, overlong or truncated sequence. */
static long next_code_point(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    size_t n;
    long cp;

    if (c < 0x80) {
        (*i)++;
        return c;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 1;
        cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        n = 2;
        cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        n = 3;
        cp = c & 0x07;
    } else {
        return -1;
    }
    if (*i + n >= len)
        return -1;
    for (size_t k = 1; k <= n; k++) {
        if ((s[*i + k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return -1;
    *i += n + 1;
    return cp;
}

/* Joiners, variation selectors, the keycap mark and tag characters: they
 * build emoji sequences but are no emoji on their own. */
static bool is_emoji_modifier(long cp)
{
    return cp == 0x200D || cp == 0xFE0E || cp == 0xFE0F || cp == 0x20E3 || (cp >= 0xE0020 && cp <= 0xE007F);
}

static bool is_emoji_symbol(long cp)
{
    static const struct {
        long first, last;
    } ranges[] = {
        {0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049},
        {0x2122, 0x2122}, {0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA},
        {0x231A, 0x23FF}, {0x24C2, 0x24C2}, {0x25A0, 0x27BF}, {0x2900, 0x2BFF},
        {0x3030, 0x3030}, {0x303D, 0x303D}, {0x3297, 0x3297}, {0x3299, 0x3299},
        {0x1F000, 0x1FAFF},
    };

    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (cp >= ranges[i].first && cp <= ranges[i].last)
            return true;
    }
    return false;
}

static bool is_keycap_base(long cp)
{
    return (cp >= '0' && cp <= '9') || cp == '#' || cp == '*';
}

bool ssp_emoji_key(const char *key, size_t len)
{
    const unsigned char *s = (const unsigned char *)key;
    bool keycap = false, symbol = false, keycap_base = false;
    size_t i = 0;

    if (key == NULL || len == 0 || len > SSP_EMOJI_KEY_MAX)
        return false;
    while (i < len) {
        long cp = next_code_point(s, len, &i);

        if (cp < 0)
            return false;
        if (cp == 0x20E3)
            keycap = true;
        if (is_emoji_symbol(cp))
            symbol = true;
        else if (is_keycap_base(cp))
            keycap_base = true;
        else if (!is_emoji_modifier(cp))
            return false;
    }
    /* Digits, '#' and '*' only as keycaps; and something besides modifiers. */
    if (keycap_base && !keycap)
        return false;
    return symbol || keycap_base;
}
