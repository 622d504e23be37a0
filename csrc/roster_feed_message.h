/*
 * What the roster feed's consumer (roster_feed.c) knows of one message
 * (roster_feed_message.c): its properties as rabbitmq-c decodes them, what
 * they take encoded, its fingerprint, and whether its dead letter failed
 * before.
 */
#ifndef SSP_ROSTER_FEED_MESSAGE_H
#define SSP_ROSTER_FEED_MESSAGE_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

/* Copies in into out, every string and the headers table allocated from
 * pool, so that the connection's buffers may be released. -1 when out of
 * memory. */
int ssp_amqp_props_copy(amqp_pool_t *pool, const amqp_basic_properties_t *in,
                        amqp_basic_properties_t *out);
/* How many bytes the properties take encoded in a content header frame (an
 * upper bound): rabbitmq-c fails a publish whose properties do not fit one
 * frame, after it has sent the method frame. */
size_t ssp_amqp_props_size(const amqp_basic_properties_t *p);
/* The same for a field table. */
size_t ssp_amqp_table_size(const amqp_table_t *t);
/* What tells a redelivered message from others without keeping it: its
 * size, its message id and number of headers, and the first 64 KiB of its
 * body (body NULL: not kept). */
uint64_t ssp_amqp_fingerprint(const amqp_basic_properties_t *p, uint64_t body_size,
                              const void *body, size_t body_len);

/* Messages whose dead letter failed (the connection went while it waited
 * for the broker's confirm: the broker or rabbitmq-c refused it), by
 * fingerprint, and how far the next copy goes: level 1, a trimmed copy;
 * level 2, rejected without a dead letter. So no message comes back in a
 * loop. A fixed number of slots, the oldest reused. */
#define SSP_POISON_SLOTS 32

typedef struct ssp_poison_list {
    struct {
        uint64_t fingerprint;
        int level; /* 0: free */
    } slots[SSP_POISON_SLOTS];
    size_t next;
} ssp_poison_list;

/* 0 for a message whose dead letter never failed. */
int ssp_poison_level(const ssp_poison_list *list, uint64_t fingerprint);
/* Its dead letter failed (again): one level up. */
void ssp_poison_note(ssp_poison_list *list, uint64_t fingerprint);
/* Its dead letter was confirmed. */
void ssp_poison_forget(ssp_poison_list *list, uint64_t fingerprint);

#endif
