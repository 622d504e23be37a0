/*
 * libFuzzer target: the reaction-key reader of one-way rooms (matrix.c), a
 * UTF-8 decoder that sees attacker-chosen bytes. It must never read past the
 * key, and whatever it takes for an emoji must be short, valid UTF-8 with
 * no letters, digits outside keycaps, spaces or controls: no free text.
 */
#include <stdint.h>
#include <string.h>

#include "ssp_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool keycap;

    /* The key is not NUL-terminated: ASan catches a read past `size`. */
    if (!ssp_emoji_key((const char *)data, size))
        return 0;
    REQUIRE(size >= 1 && size <= SSP_EMOJI_KEY_MAX);
    REQUIRE(ssp_utf8_valid((const char *)data, size));
    keycap = size >= 3 && memmem(data, size, "\xE2\x83\xA3", 3) != NULL;
    for (size_t i = 0; i < size; i++) {
        uint8_t c = data[i];

        REQUIRE(c >= 0x80 || (keycap && ((c >= '0' && c <= '9') || c == '#' || c == '*')));
    }
    (void)ssp_room_version_creators_have_power((const char *)data, size);
    return 0;
}
