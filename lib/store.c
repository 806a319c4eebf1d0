/* store: implementation pending. */
#include "lib/store.h"
