<?php
/**
 * Plugin Name: FC Lab: comments for tests
 * Description: The lab's tests write one comment a second: no flood or duplicate throttling. No
 *   mail leaves the lab's old host (its Postfix has no mailbox for WordPress's notifications).
 *   A must-use plugin of the lab (lab/apps.py), not part of WordPress.
 */
remove_action( 'check_comment_flood', 'check_comment_flood_db', 10 );
add_filter( 'wp_is_comment_flood', '__return_false', 99 );
add_filter( 'duplicate_comment_id', '__return_false', 99 );
add_filter( 'pre_wp_mail', '__return_true' );
