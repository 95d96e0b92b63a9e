/* The C ABI from C, against a loaded pin directory (argv[1], made by
 * test_pin): every call's success and error codes, bad input refused with
 * the table unchanged, owners, sync, 8 threads sharing one handle, and the
 * median time of nodeport_set over 10,000 calls (printed, not asserted).
 * Plain C11 and pthreads: what a cgo or ctypes user sees. */
#define _GNU_SOURCE
#include <nodeport/nodeport.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int passed, failed;

#define CHECK(cond, ...)                                                                      \
	do {                                                                                  \
		if (cond) {                                                                   \
			passed++;                                                             \
		} else {                                                                      \
			failed++;                                                             \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
			printf(__VA_ARGS__);                                                  \
			printf(" (last error: %s)\n", nodeport_last_error());                 \
		}                                                                             \
	} while (0)

#define EXPECT_CODE(want, call) \
	do { int rc_ = (call); CHECK(rc_ == (want), "%s gave %d (%s), want %d", #call, rc_, nodeport_strerror(rc_), (want)); } while (0)

static size_t count(nodeport *np)
{
	nodeport_mapping *all = NULL;
	size_t n = 0;
	EXPECT_CODE(NODEPORT_OK, nodeport_list(np, &all, &n));
	nodeport_free(all);
	return n;
}

static nodeport_mapping entry(const char *proto, uint16_t port, const char *ip, uint16_t backend_port, const char *owner)
{
	nodeport_mapping m;
	memset(&m, 0, sizeof m);
	snprintf(m.proto, sizeof m.proto, "%s", proto);
	m.port = port;
	snprintf(m.backend_ip, sizeof m.backend_ip, "%s", ip);
	m.backend_port = backend_port;
	snprintf(m.owner, sizeof m.owner, "%s", owner);
	return m;
}

static void test_open(const char *pin_dir)
{
	nodeport *np = (nodeport *)1;
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_open(pin_dir, NULL));
	EXPECT_CODE(NODEPORT_ENOTLOADED, nodeport_open("/sys/fs/bpf/nodeport-c-api-test-never-loaded", &np));
	CHECK(np == NULL, "a failed open leaves *out NULL");
	CHECK(strstr(nodeport_last_error(), "not loaded") != NULL, "message: %s", nodeport_last_error());
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_open("relative/dir", &np));
	nodeport_close(NULL);

	/* nodeport_open_with: options a later version extends. */
	CHECK(strcmp(nodeport_version(), "0.1.0") >= 0 && strchr(nodeport_version(), '.') != NULL, "version %s",
	      nodeport_version());
	struct nodeport_open_opts opts = {.sz = sizeof opts, .pin_dir = pin_dir, .lock_wait_ms = 200};
	EXPECT_CODE(NODEPORT_OK, nodeport_open_with(&opts, &np));
	nodeport_close(np);
	opts.lock_wait_ms = -2;
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_open_with(&opts, &np));
	CHECK(strstr(nodeport_last_error(), "lock_wait_ms") != NULL, "names the field: %s", nodeport_last_error());
	/* A caller built against a later header: a field this library does not know, set, is refused... */
	struct { struct nodeport_open_opts known; uint64_t later; } bigger = {{sizeof bigger, pin_dir, 0}, 1};
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_open_with(&bigger.known, &np));
	/* ...and left zero, accepted; so is an older, shorter struct (no lock_wait_ms). */
	bigger.later = 0;
	EXPECT_CODE(NODEPORT_OK, nodeport_open_with(&bigger.known, &np));
	nodeport_close(np);
	struct nodeport_open_opts older = {.sz = offsetof(struct nodeport_open_opts, lock_wait_ms), .pin_dir = pin_dir};
	EXPECT_CODE(NODEPORT_OK, nodeport_open_with(&older, &np));
	nodeport_close(np);
}

static void test_set_get_del(nodeport *np)
{
	nodeport_mapping got;
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 6667, "10.8.0.2", 6667, "sb-1"));
	EXPECT_CODE(NODEPORT_OK, nodeport_get(np, "TCP", 6667, &got));
	CHECK(strcmp(got.proto, "tcp") == 0 && got.port == 6667 && strcmp(got.backend_ip, "10.8.0.2") == 0 &&
		      got.backend_port == 6667 && strcmp(got.owner, "sb-1") == 0,
	      "got %s/%u %s:%u %s", got.proto, got.port, got.backend_ip, got.backend_port, got.owner);
	EXPECT_CODE(NODEPORT_ENOTFOUND, nodeport_get(np, "udp", 6667, &got));
	/* A redeploy: the last set wins. */
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 6667, "10.8.0.3", 7000, "sb-2"));
	EXPECT_CODE(NODEPORT_EOWNED, nodeport_del(np, "tcp", 6667, "sb-1"));
	CHECK(strstr(nodeport_last_error(), "sb-2") != NULL, "names the holder: %s", nodeport_last_error());
	EXPECT_CODE(NODEPORT_OK, nodeport_get(np, "tcp", 6667, &got));
	CHECK(strcmp(got.owner, "sb-2") == 0 && got.backend_port == 7000, "sb-1's del left sb-2's entry");
	EXPECT_CODE(NODEPORT_OK, nodeport_del(np, "tcp", 6667, "sb-2"));
	EXPECT_CODE(NODEPORT_ENOTFOUND, nodeport_del(np, "tcp", 6667, NULL));
	/* No owner; del with NULL removes whatever is there. */
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "udp", 53, "10.8.0.4", 5353, NULL));
	EXPECT_CODE(NODEPORT_OK, nodeport_get(np, "udp", 53, &got));
	CHECK(got.owner[0] == '\0', "no owner: \"%s\"", got.owner);
	EXPECT_CODE(NODEPORT_OK, nodeport_del(np, "udp", 53, NULL));
	CHECK(count(np) == 0, "empty again");
}

/* Everything the CLI refuses, refused here with nothing changed. */
static void test_bad_input(nodeport *np)
{
	char long_owner[300];
	nodeport_mapping got;
	memset(long_owner, 'a', sizeof long_owner);
	long_owner[256] = '\0'; /* 256 characters: one too many */

	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 80, "10.8.0.2", 80, "keep"));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(NULL, "tcp", 81, "10.8.0.2", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 0, "10.8.0.2", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.8.0.2", 0, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "sctp", 81, "10.8.0.2", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, NULL, 81, "10.8.0.2", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, NULL, 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "127.0.0.1", 80, NULL));
	CHECK(strstr(nodeport_last_error(), "backend address") != NULL, "names the field: %s", nodeport_last_error());
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "0.0.0.0", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "224.0.0.1", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.0.0.256", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.0.0.1:80", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.8.0.2", 80, long_owner));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.8.0.2", 80, "sb 1"));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 81, "10.8.0.2", 80, "sb-\x01"));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_del(np, "tcp", 80, ""));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_del(np, "tcp", 0, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_del_owner(np, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_del_owner(np, ""));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_get(np, "tcp", 80, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_list(np, NULL, NULL));
	CHECK(count(np) == 1, "bad input changed nothing");
	EXPECT_CODE(NODEPORT_OK, nodeport_get(np, "tcp", 80, &got));
	CHECK(strcmp(got.owner, "keep") == 0, "entry intact");

	/* The longest owner the map stores is hashed and stored whole, so its
	 * owner-checked del works. */
	long_owner[255] = '\0';
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 82, "10.8.0.2", 80, long_owner));
	EXPECT_CODE(NODEPORT_OK, nodeport_get(np, "tcp", 82, &got));
	CHECK(strlen(got.owner) == 255, "255-character owner stored whole (%zu)", strlen(got.owner));
	EXPECT_CODE(NODEPORT_OK, nodeport_del(np, "tcp", 82, long_owner));
	EXPECT_CODE(NODEPORT_OK, nodeport_del(np, "tcp", 80, "keep"));
}

static void test_del_owner(nodeport *np)
{
	nodeport_mapping *all = NULL;
	size_t n = 0;
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 1000, "10.8.0.2", 80, "a"));
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "udp", 1000, "10.8.0.2", 80, "a"));
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 1001, "10.8.0.2", 81, "a"));
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 1002, "10.8.0.3", 80, "b"));
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 1003, "10.8.0.3", 80, "ab"));
	EXPECT_CODE(NODEPORT_OK, nodeport_set(np, "tcp", 1004, "10.8.0.3", 80, NULL));
	EXPECT_CODE(NODEPORT_OK, nodeport_del_owner(np, "a"));
	EXPECT_CODE(NODEPORT_OK, nodeport_del_owner(np, "nobody-holds-this"));
	EXPECT_CODE(NODEPORT_OK, nodeport_list(np, &all, &n));
	CHECK(n == 3, "b, ab and the unowned entry are left (%zu)", n);
	if (n == 3) {
		CHECK(all[0].port == 1002 && strcmp(all[0].owner, "b") == 0, "sorted: %u", all[0].port);
		CHECK(all[1].port == 1003 && strcmp(all[1].owner, "ab") == 0, "sorted: %u", all[1].port);
		CHECK(all[2].port == 1004 && all[2].owner[0] == '\0', "sorted: %u", all[2].port);
	}
	nodeport_free(all);
}

static void test_sync(nodeport *np)
{
	nodeport_mapping want[3] = {
		entry("tcp", 1002, "10.8.0.9", 80, "b"), /* overwritten */
		entry("udp", 2000, "10.8.0.9", 90, "c"), /* added */
		entry("tcp", 2001, "10.8.0.9", 91, ""),  /* added, no owner */
	};                                             /* tcp/1003, tcp/1004 removed */
	nodeport_mapping bad[2] = {entry("tcp", 3000, "10.8.0.9", 80, "x"), entry("tcp", 3001, "127.0.0.1", 80, "x")};
	nodeport_mapping twice[2] = {entry("tcp", 3000, "10.8.0.9", 80, "x"), entry("tcp", 3000, "10.8.0.8", 80, "y")};
	nodeport_mapping *all = NULL;
	nodeport_mapping got;
	size_t n = 0;

	EXPECT_CODE(NODEPORT_OK, nodeport_sync(np, want, 3));
	EXPECT_CODE(NODEPORT_OK, nodeport_list(np, &all, &n));
	CHECK(n == 3, "three entries after sync (%zu)", n);
	if (n == 3)
		CHECK(all[0].port == 1002 && strcmp(all[0].backend_ip, "10.8.0.9") == 0 && all[1].port == 2001 &&
			      strcmp(all[2].proto, "udp") == 0,
		      "the desired set");
	nodeport_free(all);

	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_sync(np, bad, 2));
	CHECK(strstr(nodeport_last_error(), "entry 1") != NULL, "names the entry: %s", nodeport_last_error());
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_sync(np, twice, 2));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_sync(np, NULL, 1));
	EXPECT_CODE(NODEPORT_ENOTFOUND, nodeport_get(np, "tcp", 3000, &got));
	CHECK(count(np) == 3, "refused syncs changed nothing");
	EXPECT_CODE(NODEPORT_OK, nodeport_sync(np, NULL, 0));
	CHECK(count(np) == 0, "sync to nothing empties the table");
}

#define THREADS 8
#define PORTS_PER_THREAD 250

struct writer {
	nodeport *np;
	int index;
	int errors;
};

static void *write_ports(void *arg)
{
	struct writer *w = arg;
	char owner[32];
	snprintf(owner, sizeof owner, "thread-%d", w->index);
	for (int i = 0; i < PORTS_PER_THREAD; i++) {
		uint16_t port = (uint16_t)(10000 + w->index * PORTS_PER_THREAD + i);
		if (nodeport_set(w->np, i % 2 ? "udp" : "tcp", port, "10.8.0.2", port, owner) != NODEPORT_OK)
			w->errors++;
	}
	return NULL;
}

static void test_threads(nodeport *np)
{
	pthread_t threads[THREADS];
	struct writer writers[THREADS];
	for (int i = 0; i < THREADS; i++) {
		writers[i] = (struct writer){np, i, 0};
		pthread_create(&threads[i], NULL, write_ports, &writers[i]);
	}
	int errors = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(threads[i], NULL);
		errors += writers[i].errors;
	}
	CHECK(errors == 0, "%d sets failed", errors);
	CHECK(count(np) == THREADS * PORTS_PER_THREAD, "8 threads x 250 ports, none lost (%zu)", count(np));
	for (int i = 0; i < THREADS; i++) {
		char owner[32];
		snprintf(owner, sizeof owner, "thread-%d", i);
		EXPECT_CODE(NODEPORT_OK, nodeport_del_owner(np, owner));
	}
	CHECK(count(np) == 0, "del_owner of each thread empties the table");
}

static int compare_ns(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* Median of 10,000 nodeport_set calls on distinct ports (printed, for the
 * comparison with the C++ and Go APIs in docs/api.md). */
static void time_set(nodeport *np)
{
	enum { N = 10000 };
	static long ns[N];
	int errors = 0;
	for (int i = 0; i < N; i++) {
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		errors += nodeport_set(np, "tcp", (uint16_t)(20000 + i), "10.8.0.2", 80, "bench") != NODEPORT_OK;
		clock_gettime(CLOCK_MONOTONIC, &b);
		ns[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
	}
	CHECK(errors == 0, "%d timed sets failed", errors);
	qsort(ns, N, sizeof ns[0], compare_ns);
	printf("C nodeport_set: median %.2f us over %d calls (p90 %.2f us)\n", ns[N / 2] / 1000.0, N,
	       ns[N * 9 / 10] / 1000.0);
	EXPECT_CODE(NODEPORT_OK, nodeport_del_owner(np, "bench"));
}

static void test_strerror(void)
{
	int codes[] = {NODEPORT_OK,	    NODEPORT_EBADINPUT, NODEPORT_ENOTLOADED, NODEPORT_ENOTFOUND,
		       NODEPORT_EOWNED,	    NODEPORT_EPERM,	NODEPORT_EINTERNAL,  NODEPORT_EBUSY,
		       NODEPORT_ETIMEDOUT};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		CHECK(nodeport_strerror(codes[i]) != NULL && strcmp(nodeport_strerror(codes[i]), nodeport_strerror(-100)) != 0,
		      "code %d has a name", codes[i]);
}

/* nodeport_drain: nothing translated to a backend nobody uses, so it is
 * drained at once; bad input is refused and *left zeroed. (The waits with
 * live connections, external and local, are drain_test.sh's, through the
 * same PortTable::drain.) */
static void test_drain(nodeport *np)
{
	nodeport_connections left = {7, 7};
	EXPECT_CODE(NODEPORT_OK, nodeport_drain(np, "10.8.9.9", 6667, 0, &left));
	CHECK(left.external == 0 && left.local == 0, "nothing left: %u external, %u local", left.external, left.local);
	EXPECT_CODE(NODEPORT_OK, nodeport_drain(np, "10.8.9.9", 6667, 1000, NULL));
	left.external = 7;
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_drain(np, "10.8.9", 6667, 0, &left));
	CHECK(strstr(nodeport_last_error(), "backend") != NULL, "message names the backend: %s", nodeport_last_error());
	CHECK(left.external == 0, "*left is zeroed on failure");
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_drain(np, "10.8.9.9", 0, 0, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_drain(np, NULL, 6667, 0, NULL));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_drain(NULL, "10.8.9.9", 6667, 0, NULL));
}

/* Closing twice is harmless, and a closed handle is refused at once with a
 * code that says so (issue 22: a double close aborted, and a call after
 * close waited 5 s for a lock in freed memory). */
static void test_close(const char *pin_dir, nodeport *np)
{
	nodeport *other = NULL;
	nodeport_mapping got;
	EXPECT_CODE(NODEPORT_OK, nodeport_open(pin_dir, &other));
	nodeport_close(np);
	nodeport_close(np);
	nodeport_close(NULL);
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_set(np, "tcp", 6667, "10.8.0.2", 6667, NULL));
	CHECK(strstr(nodeport_last_error(), "handle: not open") != NULL, "message: %s", nodeport_last_error());
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_get(np, "tcp", 6667, &got));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_sync(np, NULL, 0));
	EXPECT_CODE(NODEPORT_EBADINPUT, nodeport_get((nodeport *)&got, "tcp", 6667, &got));
	CHECK(strstr(nodeport_last_error(), "handle: not open") != NULL, "a pointer never opened: %s",
	      nodeport_last_error());
	CHECK(count(other) == 0, "another handle still works after the double close");
	nodeport_close(other);
}

int main(int argc, char **argv)
{
	nodeport *np = NULL;
	if (argc != 2) {
		fprintf(stderr, "usage: c_api_test PIN_DIR (loaded)\n");
		return 2;
	}
	test_open(argv[1]);
	test_strerror();
	EXPECT_CODE(NODEPORT_OK, nodeport_open(argv[1], &np));
	if (np == NULL)
		return 1;
	CHECK(nodeport_last_error()[0] == '\0', "a successful call clears the message");
	test_set_get_del(np);
	test_bad_input(np);
	test_del_owner(np);
	test_sync(np);
	test_threads(np);
	time_set(np);
	test_drain(np);
	test_close(argv[1], np);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
