"""One run of a stream: records prepared and mapped (pure), batches fetched, pages written with their cursor."""
