"""Views other than the console (room: views): the headless display and Prometheus metrics.
They read the store through its queries and write nothing but control rows."""
