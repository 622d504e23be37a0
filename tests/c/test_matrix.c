/*
 * The Matrix facts the rules depend on (rules/matrix.c): which reaction
 * keys are emoji, which room versions give creators power.
 */
#include <string.h>

#include "check.h"
#include "school_worlds.h"
#include "ssp_private.h"
#include "tests.h"
#include "testutil.h"

static void emoji_keys(void)
{
    static const char *const emoji[] = {
        "\xF0\x9F\x91\x8D",                                             /* thumbs up */
        "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",                             /* with a skin tone */
        "\xE2\x9D\xA4\xEF\xB8\x8F",                                     /* heart + VS16 */
        "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7", /* family (ZWJ) */
        "1\xEF\xB8\x8F\xE2\x83\xA3",                                    /* keycap 1 */
        "#\xE2\x83\xA3",                                                /* keycap # without VS16 */
        "\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA",                             /* flag DE */
        /* the flag of England: black flag, the tags "gbeng", cancel tag */
        ("\xF0\x9F\x8F\xB4\xF3\xA0\x81\xA7\xF3\xA0\x81\xA2\xF3\xA0\x81\xA5\xF3\xA0\x81\xAE"
         "\xF3\xA0\x81\xA7\xF3\xA0\x81\xBF"),
        "\xC2\xA9",                                                     /* copyright sign */
        "\xF0\x9F\x85\xB0\xEF\xB8\x8F",                                 /* blood type A */
    };
    static const char *const text[] = {
        "", "+1", "ok", "meet me at 5", "1", "\xE2\x80\x8D", "\xF0\x9F\x91\x8D hi",
        "\xC3\xA4",     /* a-umlaut: a letter */
        "\xF0\x9F\x91", /* truncated */
        "\xC0\xAF",     /* overlong */
        "\xF0\x9F\x91\x8D\xF0\x9F\x91\x8D", /* two emoji: two reactions' worth */
        "01761234567\xE2\x83\xA3",          /* a phone number before one keycap */
        "\xE2\x9E\x80\xE2\x9E\x86",         /* dingbat circled digits */
        "\xF0\x9F\x85\xBC\xF0\x9F\x85\xB4", /* enclosed letters M E */
        "\xF0\x9F\x87\xA9",                 /* one regional indicator */
        "\xF0\x9F\x87\xA9\xF0\x9F\x87\xAA\xF0\x9F\x87\xA9", /* three: letters, not a flag */
        "\xF0\x9F\x8F\xB4\xF3\xA0\x81\xAD\xF3\xA0\x81\xA5", /* tags that spell, no cancel tag */
        "\xF0\x9F\x8F\xBD",                 /* a skin tone alone */
        "\xF0\x9F\x91\x8D\xE2\x80\x8D",     /* a joiner at the end */
    };
    char seq[80];
    size_t len = 0;

    for (size_t i = 0; i < sizeof emoji / sizeof emoji[0]; i++)
        CHECK_MSG(ssp_emoji_key(emoji[i], strlen(emoji[i])), "emoji %zu refused", i);
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        CHECK_MSG(!ssp_emoji_key(text[i], strlen(text[i])), "text %zu taken for an emoji", i);
    /* A joined sequence up to the length limit, and one past it. */
    memcpy(seq, "\xF0\x9F\x91\x8D", 4);
    len = 4;
    for (int k = 0; k < 8; k++, len += 7)
        memcpy(seq + len, "\xE2\x80\x8D\xF0\x9F\x91\x8D", 7);
    CHECK(len == 60 && ssp_emoji_key(seq, len));
    memcpy(seq + len, "\xE2\x80\x8D\xF0\x9F\x91\x8D", 7);
    CHECK(!ssp_emoji_key(seq, len + 7));
}

static void room_versions_with_creator_power(void)
{
    CHECK(ssp_room_version_creators_have_power("12", 2));
    CHECK(ssp_room_version_creators_have_power("org.matrix.hydra.11", 19));
    CHECK(ssp_room_version_creators_have_power("13", 2));
    CHECK(!ssp_room_version_creators_have_power("11", 2));
    CHECK(!ssp_room_version_creators_have_power("1", 1));
    CHECK(!ssp_room_version_creators_have_power("org.matrix.msc3757.11", 21));
    CHECK(!ssp_room_version_creators_have_power(NULL, 0));
}

void run_matrix_tests(void)
{
    RUN(emoji_keys);
    RUN(room_versions_with_creator_power);
}
