"""ddtrace conformance tests (issue 3): emberscope uploads compared with the real ddtrace."""
