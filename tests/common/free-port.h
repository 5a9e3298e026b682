/*
 * Test helpers shared by unit tests and qtests (no snapvm, no QMP).
 */
#ifndef TESTS_FREE_PORT_H
#define TESTS_FREE_PORT_H

/*
 * A TCP port on 127.0.0.1 that was free a moment ago: bound to port 0,
 * read back, closed.  Another process may take it in between; the tests
 * that use it only fail then, they do not hang.
 */
int test_free_tcp_port(void);

#endif
