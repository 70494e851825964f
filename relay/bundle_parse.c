/* placeholder until the real file lands */
typedef int placeholder_bundle_parse;
