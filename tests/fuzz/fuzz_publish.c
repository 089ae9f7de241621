/*
 * libFuzzer target for what queues answer: cdc-publish runs whole (its
 * main, through libcurl) for every target, and every request it makes,
 * the token request of a Pub/Sub service-account key included, is
 * answered with the fuzzer's bytes as they come on the wire: status line,
 * headers (Retry-After, chunked encoding...) and body. The answers come
 * from a server on 127.0.0.1 that libcurl reaches as an HTTP proxy
 * (http_proxy), so the targets' own URLs are used unchanged.
 *
 * Input: byte 0 picks the configuration, byte 1 options (bit 0: a
 * dead-letter file, bit 1: two requests in flight, bits 2-3: 1 to 4
 * transactions of two golden cases' events, bit 4: the events are the
 * input's own, up to a line "--"), the rest is the answer.
 * --retry-max-time 0 makes the first failure final, so each run is one or
 * a few requests.
 *
 * What must hold whatever the answer: cdc-publish exits with a status its
 * manual names for delivery (0, 4 gave up, 5 credentials, 9 refused; 3 for
 * a bad line of the input's own events), and nothing leaks or overflows.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define main cdc_publish_main
#include "../../cdc-publish/main.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* one configuration: environment (NAME=VALUE, NULL-ended) and arguments */
struct conf {
	const char *env[4];
	const char *args[12];
};

#define SB_CONN "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;" \
	"SharedAccessKey=fuzz+SB+key/0123456789abcdefghijklmnopq="
#define AZ_CONN "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" \
	"QueueEndpoint=http://azurite.test:10001/devstoreaccount1;"

static const struct conf confs[] = {
	{{NULL}, {"--body", "array", "--batch", "3", "http://sink.test/events"}},
	{{"FZ_TOKEN=fuzz-token", NULL}, {"--pack", "tx", "--bearer-env", "FZ_TOKEN", "http://sink.test/events"}},
	{{"FZ_BASIC=guest:guest", NULL}, {"--target", "rabbitmq", "--routing-key", "q", "--basic-env", "FZ_BASIC",
		"--tx-markers", "http://rabbit.test:15672"}},
	{{"FZ_SB=" SB_CONN ";EntityPath=cdc", NULL}, {"--target", "servicebus", "--credentials-env", "FZ_SB",
		"http://contoso.servicebus.windows.net/"}},
	{{"FZ_SB=" SB_CONN, NULL}, {"--target", "servicebus", "--credentials-env", "FZ_SB", "--batch", "3",
		"--ordering-key", "row", "http://contoso.servicebus.windows.net/cdc?timeout=60"}},
	{{"FZ_SB=" SB_CONN ";EntityPath=hub", NULL}, {"--target", "eventhubs", "--credentials-env", "FZ_SB",
		"--batch", "10", "http://contoso.servicebus.windows.net/hub/messages"}},
	{{"AWS_ACCESS_KEY_ID=AKIDFUZZ", "AWS_SECRET_ACCESS_KEY=fuzz/S3cret+Key", NULL}, {"--target", "sqs",
		"--batch", "2", "--endpoint", "http://sqs.test:4566/", "http://sqs.us-east-1.localhost:4566/000000000000/cdc"}},
	{{"AWS_ACCESS_KEY_ID=AKIDFUZZ", "AWS_SECRET_ACCESS_KEY=fuzz/S3cret+Key", "AWS_SESSION_TOKEN=fuzz-session", NULL},
		{"--target", "sqs", "--pack", "tx", "http://sqs.eu-west-1.amazonaws.com/123456789012/orders.fifo"}},
	{{"FZ_AZ=" AZ_CONN, NULL}, {"--target", "storage-queue", "--credentials-env", "FZ_AZ",
		"http://azurite.test:10001/devstoreaccount1/cdc-events"}},
	{{"FZ_SAS=?sv=2021-12-02&se=2027-01-15T09%3A00%3A00Z&sp=a&sig=fuzzSig%3D", NULL}, {"--target", "storage-queue",
		"--credentials-env", "FZ_SAS", "--pack", "tx", "http://myaccount.queue.core.windows.net/cdc-events"}},
	{{"PUBSUB_EMULATOR_HOST=pubsub.test:8085", NULL}, {"--target", "pubsub", "--batch", "100", "--ordering-key",
		"table", "projects/pgcdc-test/topics/cdc"}},
	{{NULL}, {"--target", "pubsub", "--credentials-env", "FZ_GCP_KEY", "--batch", "3",
		"http://pubsub.example.test/v1/projects/pgcdc-test/topics/cdc"}},
	{{"FZ_BASIC=svc:pw", NULL}, {"--target", "kafka-rest", "--batch", "10", "--basic-env", "FZ_BASIC",
		"http://kafka.test:8082/topics/cdc"}},
	{{NULL}, {"--target", "kafka-rest", "--batch", "10", "--pack", "tx",
		"http://kafka.test:8082/v3/clusters/lkc-1/topics/cdc/records:batch"}},
};
#define NCONFS (sizeof(confs) / sizeof(confs[0]))

static char *events;		/* the golden cases' input */
static size_t events_len;

/* the answer every request gets, and the server that gives it */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *answer;
static size_t answer_len;
static int listen_fd;

static void
die(const char *what)
{
	perror(what);
	abort();
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		die(path);
	s = malloc((size_t) n + 1);
	if (fread(s, 1, (size_t) n, f) != (size_t) n)
		die(path);
	s[n] = '\0';
	fclose(f);
	*len = (size_t) n;
	return s;
}

/* Read a request: its head, then Content-Length bytes of body. False if it broke off. */
static bool
read_request(int fd)
{
	char buf[65536];
	size_t have = 0, need = 0;
	char *end = NULL, *cl;
	ssize_t n;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};

		if (poll(&pfd, 1, 3000) <= 0)
			return false;
		n = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			return false;
		have += (size_t) n;
		buf[have] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n"))) {
			cl = strcasestr(buf, "\r\nContent-Length:");
			need = (size_t) (end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (end && have >= need)
			return true;
		if (have == sizeof(buf) - 1)	/* larger than any request here: drop what was read */
			have = 0, end = NULL;
	}
}

static void *
serve(void *arg)
{
	(void) arg;
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		uint8_t *copy;
		size_t len, off = 0;

		if (fd < 0)
			continue;
		if (read_request(fd)) {
			pthread_mutex_lock(&lock);
			len = answer_len;
			copy = malloc(len + 1);
			memcpy(copy, answer, len);
			pthread_mutex_unlock(&lock);
			while (off < len) {
				ssize_t n = send(fd, copy + off, len - off, MSG_NOSIGNAL);

				if (n <= 0)
					break;
				off += (size_t) n;
			}
			free(copy);
			/* closed at once: a client keeping the connection alive must not hold up the next */
			shutdown(fd, SHUT_WR);
		}
		close(fd);
	}
	return NULL;
}

static void
init(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	char proxy[64], *key, *s, *e;
	size_t n, m;
	pthread_t t;

	/* the events: two golden cases' input */
	s = slurp("tests/golden/publish/order_same_key/input", &n);
	e = slurp("tests/golden/publish/rabbitmq/input", &m);
	events = malloc(n + m + 1);
	memcpy(events, s, n);
	memcpy(events + n, e, m + 1);
	events_len = n + m;
	free(s);
	free(e);
	/* a service-account key whose token endpoint is one more URL answered here */
	key = slurp("tests/golden/publish/pubsub_key/env", &n);
	if (!(s = strstr(key, "PGCDC_GCP_KEY=")) || !(e = strstr(s, "https://oauth2.googleapis.com/token")))
		die("pubsub_key/env");
	s += 14;
	s[strcspn(s, "\n")] = '\0';
	memcpy(e, "http://oauth2.example.test/t", 28);
	memmove(e + 28, e + 35, strlen(e + 35) + 1);
	setenv("FZ_GCP_KEY", s, 1);
	free(key);

	if ((listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
			bind(listen_fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(listen_fd, 16) < 0 ||
			getsockname(listen_fd, (struct sockaddr *) &a, &alen) < 0)
		die("listen");
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", ntohs(a.sin_port));
	setenv("http_proxy", proxy, 1);
	unsetenv("no_proxy");
	unsetenv("NO_PROXY");
	unsetenv("all_proxy");
	unsetenv("ALL_PROXY");
	setenv("PGCDC_NOW", "1800000000", 1);
	if (pthread_create(&t, NULL, serve, NULL) != 0)
		die("pthread_create");
	log_set_level(LOG_ERROR);
}

/* Take NAME=VALUE out of the environment. */
static void
unset(const char *nv)
{
	char name[64];

	snprintf(name, sizeof(name), "%.*s", (int) strcspn(nv, "="), nv);
	unsetenv(name);
}

/* The golden events up to the end of the txs-th transaction: their length. */
static size_t
golden_events(int txs)
{
	const char *c = events;

	while (txs-- > 0 && (c = strstr(c, "{\"op\":\"commit\"")))
		c += strcspn(c, "\n") + 1;
	return c ? (size_t) (c - events) : events_len;
}

/* Standard input: ev[0..len), from a pipe that ends after them. */
static void
events_on_stdin(const void *ev, size_t len)
{
	int fds[2];

	if (pipe(fds) < 0)
		die("pipe");
	if (len && write(fds[1], ev, len) != (ssize_t) len)	/* at most a pipe's 64 KiB */
		die("write");
	close(fds[1]);
	dup2(fds[0], STDIN_FILENO);
	close(fds[0]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	const struct conf *c;
	const uint8_t *ans;
	const void *ev;
	size_t evlen;
	char *argv[32];
	int argc = 0, i, rc;

	if (!ready) {
		init();
		ready = true;
	}
	if (size < 2)
		return 0;
	c = &confs[data[0] % NCONFS];
	ev = events;
	evlen = golden_events(1 + (data[1] >> 2) % 4);
	ans = data + 2;
	if (data[1] & 16) {	/* the events are the input's too, up to a line "--" */
		const uint8_t *mark = memmem(data + 2, size - 2, "\n--\n", 4);

		ev = data + 2;
		evlen = mark ? (size_t) (mark + 1 - (data + 2)) : size - 2;
		ans = mark ? mark + 4 : data + size;
	}
	pthread_mutex_lock(&lock);
	answer = ans;
	answer_len = (size_t) (data + size - ans);
	pthread_mutex_unlock(&lock);

	for (i = 0; c->env[i]; i++)
		putenv((char *) c->env[i]);
	argv[argc++] = "cdc-publish";
	argv[argc++] = "--retry-max-time";
	argv[argc++] = "0";
	argv[argc++] = "--timeout";
	argv[argc++] = "3";
	if (data[1] & 1) {
		argv[argc++] = "--dead-letter";
		argv[argc++] = "/dev/null";
	}
	if (data[1] & 2) {
		argv[argc++] = "--parallel";
		argv[argc++] = "2";
	}
	for (i = 0; c->args[i]; i++)
		argv[argc++] = (char *) c->args[i];
	argv[argc] = NULL;
	events_on_stdin(ev, evlen);
	optind = 0;
	rc = cdc_publish_main(argc, argv);
	for (i = 0; c->env[i]; i++)
		unset(c->env[i]);
	if (rc != EXIT_OK && rc != EXIT_UNAVAILABLE && rc != EXIT_AUTH && rc != EXIT_REJECTED &&
			!(rc == EXIT_BADINPUT && (data[1] & 16))) {
		fprintf(stderr, "cdc-publish exited with status %d (configuration %d)\n", rc, data[0] % (int) NCONFS);
		__builtin_trap();
	}
	return 0;
}
