/work/main/vendor/tiny_http/target/debug/deps/tiny_http-7d69c2ecbce2760d.d: src/lib.rs src/client.rs src/common.rs src/connection.rs src/request.rs src/response.rs src/ssl.rs src/strict.rs src/test.rs src/util/mod.rs src/util/custom_stream.rs src/util/equal_reader.rs src/util/fused_reader.rs src/util/messages_queue.rs src/util/refined_tcp_stream.rs src/util/sequential.rs src/util/task_pool.rs

/work/main/vendor/tiny_http/target/debug/deps/libtiny_http-7d69c2ecbce2760d.rlib: src/lib.rs src/client.rs src/common.rs src/connection.rs src/request.rs src/response.rs src/ssl.rs src/strict.rs src/test.rs src/util/mod.rs src/util/custom_stream.rs src/util/equal_reader.rs src/util/fused_reader.rs src/util/messages_queue.rs src/util/refined_tcp_stream.rs src/util/sequential.rs src/util/task_pool.rs

/work/main/vendor/tiny_http/target/debug/deps/libtiny_http-7d69c2ecbce2760d.rmeta: src/lib.rs src/client.rs src/common.rs src/connection.rs src/request.rs src/response.rs src/ssl.rs src/strict.rs src/test.rs src/util/mod.rs src/util/custom_stream.rs src/util/equal_reader.rs src/util/fused_reader.rs src/util/messages_queue.rs src/util/refined_tcp_stream.rs src/util/sequential.rs src/util/task_pool.rs

src/lib.rs:
src/client.rs:
src/common.rs:
src/connection.rs:
src/request.rs:
src/response.rs:
src/ssl.rs:
src/strict.rs:
src/test.rs:
src/util/mod.rs:
src/util/custom_stream.rs:
src/util/equal_reader.rs:
src/util/fused_reader.rs:
src/util/messages_queue.rs:
src/util/refined_tcp_stream.rs:
src/util/sequential.rs:
src/util/task_pool.rs:
