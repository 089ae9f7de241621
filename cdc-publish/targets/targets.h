/*
 * The targets (one file each) and what their files share. Included by
 * target.c and the target files only.
 */
#ifndef CDC_PUBLISH_TARGETS_H
#define CDC_PUBLISH_TARGETS_H

#include <curl/curl.h>

#include "../publish.h"
#include "../../lib/exitcode.h"
#include "../../lib/log.h"

extern const struct target_ops target_http;
extern const struct target_ops target_rabbitmq;
/* servicebus, eventhubs */
extern const struct target_ops target_servicebus;
extern const struct target_ops target_eventhubs;

/* storage-queue */
extern const struct target_ops target_storage_queue;

/* sqs */
extern const struct target_ops target_sqs;

/* pubsub, kafka-rest */
extern const struct target_ops target_pubsub;
extern const struct target_ops target_kafka_rest;

/*
 * Content-Type, the user's --header lines, the --bearer Authorization and
 * no "Expect: 100-continue" round trip. Returns a list the caller frees.
 */
struct curl_slist *common_headers(struct publisher *p, const char *content_type);

#endif
