#include "wpool.h"
int control_open(struct pool *p, const char *a, char *e, size_t l) { (void)p; (void)a; (void)e; (void)l; return 0; }
void control_close(void) {}
int notify_open(struct pool *p, char *e, size_t l, char *b, size_t n) { (void)p; (void)e; (void)l; (void)b; (void)n; return 0; }
void notify_close(void) {}
bool client_is_command(const char *s) { (void)s; return false; }
int client_main(int c, char **v, const char *a, const char *b) { (void)c; (void)v; (void)a; (void)b; return 1; }
