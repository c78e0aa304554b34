# Stand-in for mongo:7.0.28: FerretDB v1.24.2 on SQLite (the catalog of embedded mode, built into .lab/tools by
# set-up), speaking the MongoDB wire protocol on 27017. Untested by it: mongod itself, WiredTiger (and
# --wiredTigerCacheSizeGB), the mongosh health check, and any MongoDB feature FerretDB lacks; the SQLite `_id`
# index embedded mode adds (lab/stack/ferretdb.py) is not made here, so catalog reads are slower than either.
FROM lab-standin/debian:bookworm
COPY ferretdb /usr/local/bin/ferretdb
RUN mkdir -p /data/db /var/lib/ferretdb
ENTRYPOINT ["/usr/local/bin/ferretdb"]
