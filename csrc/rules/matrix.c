/*
 * Facts of the Matrix spec and of Synapse that the rules depend on but that
 * are not school policy: how room versions hand out power, and what counts
 * as an emoji reaction key. Pure functions of their input.
 */
#include <string.h>

#include "rules/matrix.h"

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

/* Code points of emoji that stand on their own. Letters and digits in
 * disguise are left out: the enclosed alphanumerics (U+1F100-1F1FF, but for
 * the blood types, the squared words and the regional indicators, which
 * only count in pairs as a flag) and the dingbat circled digits
 * (U+2776-2793), so that a key cannot spell a phone number or a word. */
static bool is_emoji_base(long cp)
{
    static const struct {
        long first, last;
    } ranges[] = {
        {0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049},
        {0x2122, 0x2122}, {0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA},
        {0x231A, 0x23FF}, {0x24C2, 0x24C2}, {0x25A0, 0x2775}, {0x2794, 0x27BF},
        {0x2900, 0x2BFF}, {0x3030, 0x3030}, {0x303D, 0x303D}, {0x3297, 0x3297},
        {0x3299, 0x3299}, {0x1F000, 0x1F0FF}, {0x1F170, 0x1F171}, {0x1F17E, 0x1F17F},
        {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F3FA}, {0x1F400, 0x1FAFF},
    };

    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        if (cp >= ranges[i].first && cp <= ranges[i].last)
            return true;
    }
    return false;
}

/* Presentation selectors and skin tones: they follow a base. */
static bool is_emoji_modifier(long cp)
{
    return cp == 0xFE0E || cp == 0xFE0F || (cp >= 0x1F3FB && cp <= 0x1F3FF);
}

static bool is_regional_indicator(long cp)
{
    return cp >= 0x1F1E6 && cp <= 0x1F1FF;
}

static bool is_keycap_base(long cp)
{
    return (cp >= '0' && cp <= '9') || cp == '#' || cp == '*';
}

#define ZWJ 0x200D
#define KEYCAP 0x20E3
#define BLACK_FLAG 0x1F3F4
#define CANCEL_TAG 0xE007F

/* One emoji, the only thing a reaction key may be:
 *   a flag         two regional indicators
 *   a keycap       [0-9#*] U+FE0F? U+20E3
 *   a tag flag     U+1F3F4, tag characters, U+E007F (the flags of England,
 *                  Scotland, Wales)
 *   a sequence     base modifier* (ZWJ base modifier*)*   (skin tones,
 *                  families, professions)
 * Several emoji in a row are several reactions' worth: refused, like text. */
bool ssp_emoji_key(const char *key, size_t len)
{
    const unsigned char *s = (const unsigned char *)key;
    long cps[SSP_EMOJI_KEY_MAX];
    size_t n = 0, i = 0, k;

    if (key == NULL || len == 0 || len > SSP_EMOJI_KEY_MAX)
        return false;
    while (i < len) {
        long cp = next_code_point(s, len, &i);

        if (cp < 0)
            return false;
        cps[n++] = cp;
    }
    if (n == 2 && is_regional_indicator(cps[0]) && is_regional_indicator(cps[1]))
        return true;
    if (is_keycap_base(cps[0]))
        return (n == 2 && cps[1] == KEYCAP) || (n == 3 && cps[1] == 0xFE0F && cps[2] == KEYCAP);
    if (cps[0] == BLACK_FLAG && n >= 3 && cps[n - 1] == CANCEL_TAG) {
        for (k = 1; k + 1 < n && cps[k] >= 0xE0020 && cps[k] <= 0xE007E; k++)
            ;
        if (k == n - 1)
            return true;
    }
    for (k = 0; k < n;) {
        if (!is_emoji_base(cps[k++]))
            return false;
        while (k < n && is_emoji_modifier(cps[k]))
            k++;
        if (k < n && (cps[k++] != ZWJ || k == n))
            return false;
    }
    return true;
}
