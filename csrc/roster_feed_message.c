/*
 * What the roster feed's consumer knows of one message
 * (roster_feed_message.h): its properties as rabbitmq-c decodes them (a
 * deep copy, their encoded size), its fingerprint, and the messages whose
 * dead letter failed. No connection here: the consumer thread
 * (roster_feed.c) is the one that talks to the broker.
 */
#include <string.h>

#include "roster_feed_message.h"

static int copy_bytes(amqp_pool_t *pool, amqp_bytes_t *field)
{
    amqp_bytes_t copy;

    if (field->len == 0)
        return 0;
    amqp_pool_alloc_bytes(pool, field->len, &copy);
    if (copy.bytes == NULL)
        return -1;
    memcpy(copy.bytes, field->bytes, field->len);
    *field = copy;
    return 0;
}

/* The properties that are strings, with their flags: a decoded header
 * sets only the flagged ones. */
#define STRING_PROPERTIES(p)                                                                       \
    {{AMQP_BASIC_CONTENT_TYPE_FLAG, &(p)->content_type},                                           \
     {AMQP_BASIC_CONTENT_ENCODING_FLAG, &(p)->content_encoding},                                   \
     {AMQP_BASIC_CORRELATION_ID_FLAG, &(p)->correlation_id},                                       \
     {AMQP_BASIC_REPLY_TO_FLAG, &(p)->reply_to},                                                   \
     {AMQP_BASIC_EXPIRATION_FLAG, &(p)->expiration},                                               \
     {AMQP_BASIC_MESSAGE_ID_FLAG, &(p)->message_id},                                               \
     {AMQP_BASIC_TYPE_FLAG, &(p)->type},                                                           \
     {AMQP_BASIC_USER_ID_FLAG, &(p)->user_id},                                                     \
     {AMQP_BASIC_APP_ID_FLAG, &(p)->app_id},                                                       \
     {AMQP_BASIC_CLUSTER_ID_FLAG, &(p)->cluster_id}}
#define N_STRING_PROPERTIES 10

typedef struct string_property {
    amqp_flags_t flag;
    amqp_bytes_t *value;
} string_property;

int ssp_amqp_props_copy(amqp_pool_t *pool, const amqp_basic_properties_t *in,
                           amqp_basic_properties_t *out)
{
    string_property strings[N_STRING_PROPERTIES] = STRING_PROPERTIES(out);
    amqp_table_t headers;

    *out = *in;
    if (out->_flags & AMQP_BASIC_HEADERS_FLAG) {
        if (amqp_table_clone(&in->headers, &headers, pool) != AMQP_STATUS_OK)
            return -1;
        out->headers = headers;
    }
    for (size_t i = 0; i < N_STRING_PROPERTIES; i++) {
        if ((out->_flags & strings[i].flag) && copy_bytes(pool, strings[i].value) != 0)
            return -1;
    }
    return 0;
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

uint64_t ssp_amqp_fingerprint(const amqp_basic_properties_t *p, uint64_t body_size,
                              const void *body, size_t body_len)
{
    uint64_t h = fnv(14695981039346656037u, &body_size, sizeof body_size);
    int n_headers = (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? p->headers.num_entries : 0;

    h = fnv(h, &n_headers, sizeof n_headers);
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        h = fnv(h, p->message_id.bytes, p->message_id.len);
    if (body != NULL)
        h = fnv(h, body, body_len > 65536 ? 65536 : body_len);
    return h;
}

/* How many bytes a field value takes encoded (amqp_table.c's encoding). */
static size_t value_size(const amqp_field_value_t *v);

size_t ssp_amqp_table_size(const amqp_table_t *t)
{
    size_t n = 4;

    for (int i = 0; i < t->num_entries; i++)
        n += 1 + t->entries[i].key.len + value_size(&t->entries[i].value);
    return n;
}

static size_t value_size(const amqp_field_value_t *v)
{
    size_t n = 1;

    switch (v->kind) {
    case AMQP_FIELD_KIND_BOOLEAN:
    case AMQP_FIELD_KIND_I8:
    case AMQP_FIELD_KIND_U8:
        return n + 1;
    case AMQP_FIELD_KIND_I16:
    case AMQP_FIELD_KIND_U16:
        return n + 2;
    case AMQP_FIELD_KIND_I32:
    case AMQP_FIELD_KIND_U32:
    case AMQP_FIELD_KIND_F32:
        return n + 4;
    case AMQP_FIELD_KIND_DECIMAL:
        return n + 5;
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
        return n + 4 + v->value.bytes.len;
    case AMQP_FIELD_KIND_ARRAY:
        n += 4;
        for (int i = 0; i < v->value.array.num_entries; i++)
            n += value_size(&v->value.array.entries[i]);
        return n;
    case AMQP_FIELD_KIND_TABLE:
        return n + ssp_amqp_table_size(&v->value.table);
    case AMQP_FIELD_KIND_VOID:
        return n;
    default: /* I64, U64, F64, TIMESTAMP */
        return n + 8;
    }
}

size_t ssp_amqp_props_size(const amqp_basic_properties_t *p)
{
    string_property strings[N_STRING_PROPERTIES] = STRING_PROPERTIES((amqp_basic_properties_t *)p);
    size_t n = 4 + 8 + 2; /* flags (two words at most), timestamp, delivery mode, priority */

    for (size_t i = 0; i < N_STRING_PROPERTIES; i++) {
        if (p->_flags & strings[i].flag)
            n += 1 + strings[i].value->len;
    }
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG)
        n += ssp_amqp_table_size(&p->headers);
    return n;
}


/* ---- messages whose dead letter failed ---- */

int ssp_poison_level(const ssp_poison_list *list, uint64_t fingerprint)
{
    for (size_t i = 0; i < SSP_POISON_SLOTS; i++) {
        if (list->slots[i].level > 0 && list->slots[i].fingerprint == fingerprint)
            return list->slots[i].level;
    }
    return 0;
}

void ssp_poison_note(ssp_poison_list *list, uint64_t fingerprint)
{
    size_t slot = list->next % SSP_POISON_SLOTS;

    for (size_t i = 0; i < SSP_POISON_SLOTS; i++) {
        if (list->slots[i].level > 0 && list->slots[i].fingerprint == fingerprint) {
            list->slots[i].level++;
            return;
        }
    }
    /* the oldest entry makes room: a message not seen since is forgotten */
    list->slots[slot].fingerprint = fingerprint;
    list->slots[slot].level = 1;
    list->next++;
}

void ssp_poison_forget(ssp_poison_list *list, uint64_t fingerprint)
{
    for (size_t i = 0; i < SSP_POISON_SLOTS; i++) {
        if (list->slots[i].fingerprint == fingerprint)
            list->slots[i].level = 0;
    }
}
